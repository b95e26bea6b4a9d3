"""What crosses the wire for the directory, recommendations, bookings and talent discovery."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.common import SHANGHAI, AwareDateTime, CreditsText, Id, PageArgs, SchoolYear, Text
from app.matching.models import BOOKING_STATUSES
from app.transcripts.schemas import MissingSchema
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


# --- answers (documented only: the views build them, tests/fuzz checks them) ----------------------


class PublicVenueSchema(Schema):
    """A venue as the public directory shows it."""

    id = fields.Integer()
    name = fields.String()
    kind = fields.String(metadata={"description": "science_base, demo_site, enterprise_hall, science_museum, "
                                                  "museum or campus"})
    kind_label = fields.String()
    level = fields.String(metadata={"description": "national, provincial, city or district"})
    level_label = fields.String()
    district_id = fields.Integer()
    district_name = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    latitude = fields.Float(allow_none=True)
    longitude = fields.Float(allow_none=True)


class PublicActivitySchema(Schema):
    """An activity as the public directory shows it, with the seats left (null: no capacity)."""

    id = fields.Integer()
    title = fields.String()
    kind = fields.String(metadata={"description": "visit, lecture, workshop, research or volunteer"})
    kind_label = fields.String()
    theme = fields.String(allow_none=True)
    starts_at = AwareDateTime()
    ends_at = AwareDateTime()
    min_minutes = fields.Integer()
    grades = fields.List(fields.Integer())
    capacity = fields.Integer(allow_none=True)
    seats_left = fields.Integer(allow_none=True)
    full = fields.Boolean()
    venue = fields.Nested(PublicVenueSchema)


class DirectoryActivitiesSchema(Schema):
    items = fields.List(fields.Nested(PublicActivitySchema), metadata={"description": "soonest first"})
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()
    start = AwareDateTime(data_key="from", metadata={"description": "the window listed (never before now)"})
    end = AwareDateTime(data_key="to")


class DirectoryVenueSchema(PublicVenueSchema):
    themes = fields.List(fields.String(), metadata={"description": "themes of its activities in the next 90 days"})
    upcoming_activities = fields.Integer(metadata={"description": "its activities in the next 90 days"})


class DirectoryVenuesSchema(Schema):
    items = fields.List(fields.Nested(DirectoryVenueSchema))
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()


class DirectoryDistrictSchema(Schema):
    id = fields.Integer()
    name = fields.String()


class DirectoryDistrictsSchema(Schema):
    items = fields.List(fields.Nested(DirectoryDistrictSchema))


class RecommendationSchema(PublicActivitySchema):
    """A recommended activity: the directory's view, ranked, with the reason and the credits it would bring."""

    rank = fields.Integer(metadata={"description": "1, 2, 3 …"})
    reason = fields.String(metadata={"description": "one line in Chinese: 还差一项实验/工作坊类活动 …"})
    reason_code = fields.String(metadata={"description": "required_kind, new_kind, credits, enrichment or venue_cap"})
    estimated_credits = CreditsText(metadata={"description": "what a typical stay would earn"})
    toward_requirement = CreditsText(metadata={"description": "how much of that the pupil still lacks"})
    distance_km = fields.Float(allow_none=True, metadata={"description": "from the pupil's school (null: unknown)"})
    more_sessions = fields.Integer(metadata={"description": "other sessions of the same programme in the window"})


class RecommendationProgressSchema(Schema):
    total = CreditsText()
    required = CreditsText()
    met = fields.Boolean()
    kinds = fields.List(fields.String())
    missing = fields.Nested(MissingSchema)


class RecommendationsSchema(Schema):
    student_id = fields.Integer()
    school_year = fields.String()
    progress = fields.Nested(RecommendationProgressSchema)
    start = AwareDateTime(data_key="from")
    end = AwareDateTime(data_key="to")
    items = fields.List(fields.Nested(RecommendationSchema), metadata={"description": "empty for an inactive pupil"})


class BookingSchema(Schema):
    """A booking. The venue's side sees no pupil: `student_id` and `student_name` are left out, and
    `school_id` / `school_name` are null for a guardian's booking."""

    id = fields.Integer()
    kind = fields.String(metadata={"description": "class (a teacher's class trip) or guardian (one child)"})
    kind_label = fields.String()
    activity_id = fields.Integer()
    activity_title = fields.String()
    activity_kind = fields.String()
    starts_at = AwareDateTime()
    ends_at = AwareDateTime()
    venue_id = fields.Integer()
    venue_name = fields.String()
    seats = fields.Integer()
    status = fields.String(metadata={"description": "confirmed, waitlisted or cancelled"})
    status_label = fields.String()
    waitlist_position = fields.Integer(allow_none=True, metadata={"description": "1 = next in; null unless waitlisted"})
    attended = fields.Integer(metadata={"description": "pupils who came in on it"})
    school_id = fields.Integer(allow_none=True)
    school_name = fields.String(allow_none=True)
    grade = fields.Integer()
    class_id = fields.Integer(allow_none=True)
    class_name = fields.String(allow_none=True)
    booked_by_name = fields.String(allow_none=True, metadata={"description": "the teacher of a class booking"})
    note = fields.String(allow_none=True)
    created_at = AwareDateTime()
    confirmed_at = AwareDateTime(allow_none=True)
    cancelled_at = AwareDateTime(allow_none=True)
    student_id = fields.Integer(allow_none=True, metadata={"description": "the pupils' side only"})
    student_name = fields.String(allow_none=True, metadata={"description": "the pupils' side only"})


class BookingCreatedSchema(BookingSchema):
    message = fields.String(metadata={"description": "预约成功 … or 已加入候补，排第 N 位 …"})


class BookingCancelledSchema(BookingSchema):
    promoted_booking_ids = fields.List(fields.Integer(), metadata={
        "description": "waitlisted bookings confirmed into the freed seats"})


class ActivityBookingsSchema(Schema):
    """One activity's seats and its live bookings, as its venue sees them (no pupil names)."""

    activity_id = fields.Integer()
    title = fields.String()
    kind = fields.String()
    starts_at = AwareDateTime()
    ends_at = AwareDateTime()
    capacity = fields.Integer(allow_none=True)
    booked_seats = fields.Integer(metadata={"description": "seats of confirmed bookings"})
    walk_ins = fields.Integer(metadata={"description": "pupils seated without a booking"})
    seats_left = fields.Integer(allow_none=True, metadata={"description": "null: no capacity"})
    confirmed = fields.List(fields.Nested(BookingSchema))
    waitlist = fields.List(fields.Nested(BookingSchema), metadata={"description": "in waiting-list order"})


class VenueDayTotalsSchema(Schema):
    bookings = fields.Integer(metadata={"description": "confirmed bookings"})
    seats = fields.Integer(metadata={"description": "seats they hold"})
    waitlisted = fields.Integer()


class VenueDaySchema(Schema):
    """A venue's day list: every activity open that day, with its seats and bookings."""

    venue_id = fields.Integer()
    venue_name = fields.String()
    date = fields.Date()
    activities = fields.List(fields.Nested(ActivityBookingsSchema))
    totals = fields.Nested(VenueDayTotalsSchema)


class NoShowSchema(Schema):
    """One venue's confirmed bookings of ended activities, and the seats nobody came in on."""

    venue_id = fields.Integer()
    venue_name = fields.String()
    bookings = fields.Integer()
    seats = fields.Integer()
    attended_seats = fields.Integer()
    no_show_bookings = fields.Integer()
    no_show_seats = fields.Integer()
    class_no_show_bookings = fields.Integer()
    guardian_no_show_bookings = fields.Integer()
    no_show_rate = fields.Float(allow_none=True, metadata={"description": "no-show seats / seats, 0–1"})


class NoShowsSchema(Schema):
    items = fields.List(fields.Nested(NoShowSchema), metadata={"description": "by venue id"})


class TalentCriterionSchema(Schema):
    code = fields.String(metadata={"description": "top_credits, award or breadth"})
    label = fields.String()


class TalentEvidenceSchema(Schema):
    """Why a pupil is listed, one criterion met. `top_credits` gives total, grade, grade_pupils and line;
    `award` gives claim_id, competition, level, award, work_title and awarded_on; `breadth` gives kinds."""

    criterion = fields.String(metadata={"description": "top_credits, award or breadth"})
    label = fields.String()
    detail = fields.String(metadata={"description": "one line in Chinese"})
    total = CreditsText()
    grade = fields.Integer()
    grade_pupils = fields.Integer(metadata={"description": "active pupils of the grade at the school"})
    line = CreditsText(metadata={"description": "the lowest total listed in the grade"})
    claim_id = fields.Integer()
    competition = fields.String()
    level = fields.String()
    award = fields.String()
    work_title = fields.String()
    awarded_on = fields.Date()
    kinds = fields.List(fields.String())


class TalentPupilSchema(Schema):
    student_id = fields.Integer()
    name = fields.String()
    student_number = fields.String()
    grade = fields.Integer()
    class_id = fields.Integer()
    class_name = fields.String(allow_none=True)
    total = CreditsText()
    kinds = fields.List(fields.String())
    criteria = fields.List(fields.String(), metadata={"description": "the codes of the criteria met"})
    evidence = fields.List(fields.Nested(TalentEvidenceSchema))


class TalentSchema(Schema):
    """Pupils whose school year stands out, for the school's own cultivation (ordered by grade, class,
    student number: never ranked)."""

    school_id = fields.Integer()
    school_name = fields.String()
    school_year = fields.String()
    criteria = fields.List(fields.Nested(TalentCriterionSchema))
    pupils_considered = fields.Integer(metadata={"description": "the school's active pupils"})
    items = fields.List(fields.Nested(TalentPupilSchema))
