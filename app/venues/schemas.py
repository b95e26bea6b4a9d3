"""What crosses the wire for venues and activities."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.common import MAX_ID, AwareDateTime, Id, PageArgs, Text
from app.venues.models import ACTIVITY_KINDS, VENUE_KINDS, VENUE_LEVELS


class VenueSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = Text(required=True, validate=validate.Length(min=1, max=128))
    kind = fields.String(required=True, validate=validate.OneOf(VENUE_KINDS))
    level = fields.String(required=True, validate=validate.OneOf(VENUE_LEVELS))
    district_id = Id(required=True)
    address = Text(allow_none=True, validate=validate.Length(max=255))
    latitude = fields.Float(allow_none=True, validate=validate.Range(-90, 90))
    longitude = fields.Float(allow_none=True, validate=validate.Range(-180, 180))
    active = fields.Boolean(load_default=True)


class VenueUpdateSchema(Schema):
    name = Text(validate=validate.Length(min=1, max=128))
    level = fields.String(validate=validate.OneOf(VENUE_LEVELS))
    address = Text(allow_none=True, validate=validate.Length(max=255))
    latitude = fields.Float(allow_none=True, validate=validate.Range(-90, 90))
    longitude = fields.Float(allow_none=True, validate=validate.Range(-180, 180))
    active = fields.Boolean()


class ActivitySchema(Schema):
    id = fields.Integer(dump_only=True)
    venue_id = Id(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(ACTIVITY_KINDS))
    title = Text(required=True, validate=validate.Length(min=1, max=200))
    theme = Text(allow_none=True, validate=validate.Length(max=64))
    starts_at = AwareDateTime(required=True)
    ends_at = AwareDateTime(required=True)
    min_minutes = fields.Integer(validate=validate.Range(min=1, max=24 * 60))
    capacity = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=MAX_ID))
    grades = fields.List(
        fields.Integer(validate=validate.Range(1, 9)), validate=validate.Length(min=1, max=9)
    )

    @validates_schema
    def _hours(self, data, **kwargs):
        if "starts_at" in data and "ends_at" in data and data["ends_at"] <= data["starts_at"]:
            raise ValidationError("结束时间必须晚于开始时间。", "ends_at")


class ActivityListArgs(PageArgs):
    venue_id = Id()
    starts_after = AwareDateTime()
    starts_before = AwareDateTime()


class CodeArgs(Schema):
    direction = fields.String(load_default="entry", validate=validate.OneOf(("entry", "exit")))


class VenueCodeSchema(Schema):
    token = fields.String()
    url = fields.String()
    expires_at = AwareDateTime()


class PassSchema(Schema):
    token = fields.String()
    version = fields.Integer()
