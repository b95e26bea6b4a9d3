"""What crosses the wire for reviews, claims, term close and adjustments."""

from marshmallow import Schema, fields, validate

from app.common import AwareDateTime, Credits, PageArgs, SchoolYear, Text
from app.reviews.models import AWARDS, COMPETITION_LEVELS, REVIEW_STATUSES
from app.venues.models import ACTIVITY_KINDS


class QueueArgs(PageArgs):
    status = fields.String(load_default="pending", validate=validate.OneOf(REVIEW_STATUSES))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class DecisionSchema(Schema):
    decision = fields.String(required=True, validate=validate.OneOf(("approve", "reject")))
    reason = Text(validate=validate.Length(max=500))


class AppealSchema(Schema):
    reason = Text(required=True, validate=validate.Length(min=2, max=500))


class ClaimFormSchema(Schema):
    competition = Text(required=True, validate=validate.Length(min=2, max=200))
    level = fields.String(required=True, validate=validate.OneOf(COMPETITION_LEVELS))
    award = fields.String(required=True, validate=validate.OneOf(AWARDS))
    work_title = Text(required=True, validate=validate.Length(min=1, max=200))
    date = fields.Date(required=True)


class ClaimCreatedSchema(Schema):
    id = fields.Integer()
    status = fields.String()
    review_id = fields.Integer()


class AdjustmentSchema(Schema):
    amount = Credits(required=True)
    reason = Text(required=True, validate=validate.Length(min=2, max=500))
    school_year = SchoolYear(required=True)
    term = fields.Integer(required=True, validate=validate.OneOf((1, 2)))
    activity_kind = fields.String(validate=validate.OneOf(ACTIVITY_KINDS))


class TermClosureSchema(Schema):
    school_id = fields.Integer()
    school_year = fields.String()
    term = fields.Integer()
    closed_by = fields.Integer()
    closed_at = AwareDateTime()
