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


class ReviewReasonSchema(Schema):
    """Why an item is in the queue."""

    code = fields.String(metadata={"description": "shared_device, impossible_travel or competition_claim"})
    message = fields.String(metadata={"description": "中文说明"})


class ReviewEventSchema(Schema):
    """One step of a review's history, oldest first."""

    action = fields.String(metadata={"description": "created, approved, rejected or appealed"})
    actor_id = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)
    at = AwareDateTime()


class ReviewCheckinSchema(Schema):
    """The flagged stay under review (`kind` checkin)."""

    id = fields.Integer()
    activity_id = fields.Integer()
    activity_title = fields.String()
    venue_name = fields.String()
    entered_at = AwareDateTime()
    exited_at = AwareDateTime(allow_none=True)
    minutes = fields.Integer(allow_none=True)
    source = fields.String(metadata={"description": "self, guardian, staff or group"})
    device_id = fields.String(allow_none=True)


class ReviewClaimSchema(Schema):
    """The competition claim under review (`kind` claim); its evidence file at `evidence_url`."""

    id = fields.Integer()
    student_id = fields.Integer()
    competition = fields.String()
    level = fields.String(metadata={"description": "national, provincial, city, district or school"})
    level_label = fields.String()
    award = fields.String(metadata={"description": "first, second, third or participation"})
    award_label = fields.String()
    work_title = fields.String()
    date = fields.Date(metadata={"description": "the day of the award"})
    status = fields.String(metadata={"description": "pending, approved or rejected"})
    evidence_url = fields.String()
    evidence_type = fields.String(metadata={"description": "image/png, image/jpeg or application/pdf"})


class ReviewSchema(Schema):
    """One item of the review queue (SPEC §7): what is reviewed, why, its decision, appeal and history."""

    id = fields.Integer()
    kind = fields.String(metadata={"description": "checkin or claim"})
    student_id = fields.Integer()
    student_name = fields.String()
    class_id = fields.Integer()
    status = fields.String(metadata={"description": "pending, approved, rejected or appealed"})
    reasons = fields.List(fields.Nested(ReviewReasonSchema))
    created_at = AwareDateTime()
    decided_at = AwareDateTime(allow_none=True)
    decision_reason = fields.String(allow_none=True)
    appeal_reason = fields.String(allow_none=True)
    appealed_at = AwareDateTime(allow_none=True)
    appeal_deadline = AwareDateTime(allow_none=True, metadata={
        "description": "until when a rejection may be appealed (null unless rejected and not yet appealed)"})
    credit_entry_id = fields.Integer(allow_none=True, metadata={"description": "the ledger entry an approval wrote"})
    history = fields.List(fields.Nested(ReviewEventSchema))
    checkin = fields.Nested(ReviewCheckinSchema, metadata={"description": "only for kind checkin"})
    claim = fields.Nested(ReviewClaimSchema, metadata={"description": "only for kind claim"})
