"""What crosses the wire for the directory, recommendations, bookings and talent discovery."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.common import SHANGHAI, AwareDateTime, Id, PageArgs, SchoolYear, Text
from app.matching.models import BOOKING_STATUSES
from app.venues.models import ACTIVITY_KINDS, VENUE_KINDS, VENUE_LEVELS

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class DayOrTime(AwareDateTime):
    """A day ("2026-05-01", a local Asia/Shanghai day) or an ISO 8601 time. As the start of a range
    a day means its first moment; as the end (`end=True`), the first moment of the next day, so
    `to=2026-05-31` includes the whole of 31 May."""

    def __init__(self, *, end: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.end = end

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and _DAY.match(value.strip()):
            try:
                day = date.fromisoformat(value.strip())
            except ValueError as exc:
                raise ValidationError("日期无效，格式为 2026-05-01。") from exc
            if self.end:
                day += timedelta(days=1)
            return datetime.combine(day, time(0), tzinfo=SHANGHAI)
        return super()._deserialize(value, attr, data, **kwargs)


class _Page(PageArgs):
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class DirectoryActivityArgs(_Page):
    start = DayOrTime(data_key="from")
    end = DayOrTime(data_key="to", end=True)
    district_id = Id()
    grade = fields.Integer(validate=validate.Range(1, 9))
    theme = Text(validate=validate.Length(max=64))
    kind = fields.String(validate=validate.OneOf(ACTIVITY_KINDS))
    venue_id = Id()
    available = fields.Boolean(load_default=False, metadata={"description": "只看还有名额的活动"})


class DirectoryVenueArgs(_Page):
    district_id = Id()
    kind = fields.String(validate=validate.OneOf(VENUE_KINDS))
    level = fields.String(validate=validate.OneOf(VENUE_LEVELS))


class RecommendationArgs(Schema):
    start = DayOrTime(data_key="from")
    end = DayOrTime(data_key="to", end=True)
    limit = fields.Integer(load_default=10, validate=validate.Range(1, 50))


class BookingCreateSchema(Schema):
    class_id = Id(metadata={"description": "教师：班级团体预约"})
    seats = fields.Integer(validate=validate.Range(1, 500), metadata={"description": "班级预约的学生人数"})
    student_id = Id(metadata={"description": "家长：为一个孩子预约一个名额"})
    waitlist = fields.Boolean(load_default=True, metadata={"description": "名额已满时是否加入候补（家长预约）"})
    note = Text(allow_none=True, validate=validate.Length(max=200))

    @validates_schema
    def _one_target(self, data, **kwargs):
        if ("class_id" in data) == ("student_id" in data):
            raise ValidationError("请提供 class_id（班级预约）或 student_id（为孩子预约）其中之一。", "_schema")
        if "class_id" in data and "seats" not in data:
            raise ValidationError("班级预约须填写人数。", "seats")
        if "student_id" in data and data.get("seats", 1) != 1:
            raise ValidationError("为孩子预约只占一个名额。", "seats")


class BookingListArgs(_Page):
    student_id = Id()
    class_id = Id()
    activity_id = Id()
    status = fields.String(validate=validate.OneOf(BOOKING_STATUSES))


class CancelArgs(Schema):
    reason = Text(validate=validate.Length(max=200))


class VenueDayArgs(Schema):
    date = fields.Date(metadata={"description": "当地日期，默认今天"})


class NoShowArgs(Schema):
    start = DayOrTime(data_key="from")
    end = DayOrTime(data_key="to", end=True)
    venue_id = Id()


class TalentArgs(Schema):
    school_year = SchoolYear()
