"""What crosses the wire for scans."""

from marshmallow import Schema, fields, validate

from app.common import AwareDateTime, Id, PageArgs, Text

DIRECTION = validate.OneOf(("entry", "exit"))


class ScanSchema(Schema):
    code = Text(validate=validate.Length(max=1024))
    student_id = Id()
    student_pass = Text(validate=validate.Length(max=1024))
    activity_id = Id()
    direction = fields.String(validate=DIRECTION)
    nonce = Text(validate=validate.Length(min=1, max=64))
    scanned_at = AwareDateTime()


class BatchSchema(Schema):
    scans = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1, max=500))


class GroupCheckinSchema(Schema):
    student_ids = fields.List(Id(), required=True, validate=validate.Length(min=1, max=200))
    direction = fields.String(required=True, validate=DIRECTION)
    scanned_at = AwareDateTime()
    # Optional: makes a retried request a replay (each pupil's scan uses "{nonce}:{student_id}").
    nonce = Text(validate=validate.Length(min=1, max=48))


class CheckinSchema(Schema):
    """One stay as the API shows it (status_label is the Chinese word the pupil's history shows)."""

    id = fields.Integer()
    student_id = fields.Integer()
    activity_id = fields.Integer()
    activity_title = fields.String()
    activity_kind = fields.String()
    venue_id = fields.Integer()
    venue_name = fields.String()
    entered_at = fields.String()
    exited_at = fields.String(allow_none=True)
    minutes = fields.Integer(allow_none=True)
    source = fields.String(metadata={"description": "self, guardian, staff or group"})
    status = fields.String(metadata={"description": "open, completed, no_exit, flagged or rejected"})
    status_label = fields.String()
    flags = fields.List(fields.Raw())


class CreditSchema(Schema):
    amount = fields.String(metadata={"description": "two decimals: \"1.00\""})
    entry_id = fields.Integer()
    seq = fields.Integer()
    explanation = fields.Dict()


class ScanResultSchema(Schema):
    checkin = fields.Nested(CheckinSchema)
    credit = fields.Nested(CreditSchema, allow_none=True, metadata={"description": "when a stay completes"})
    replayed = fields.Boolean()


class ScanLineSchema(Schema):
    """One scan's line in a batch (`nonce`) or a group check-in (`student_id`) answer, in order."""

    nonce = fields.String(allow_none=True)
    student_id = fields.Integer()
    status = fields.String(metadata={"description": "accepted, replayed or refused"})
    reason = fields.String(allow_none=True)
    message = fields.String()
    details = fields.Dict(metadata={"description": "a refused line's field messages, as in the error envelope"})
    checkin = fields.Nested(CheckinSchema, allow_none=True)
    credit = fields.Nested(CreditSchema, allow_none=True)


class ScanLinesSchema(Schema):
    results = fields.List(fields.Nested(ScanLineSchema))


class HistoryArgs(PageArgs):
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
