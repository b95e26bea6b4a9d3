"""What crosses the wire for scans."""

from marshmallow import Schema, fields, validate

from app.common import AwareDateTime

DIRECTION = validate.OneOf(("entry", "exit"))


class ScanSchema(Schema):
    code = fields.String(validate=validate.Length(max=1024))
    student_id = fields.Integer()
    student_pass = fields.String(validate=validate.Length(max=1024))
    activity_id = fields.Integer()
    direction = fields.String(validate=DIRECTION)
    nonce = fields.String(validate=validate.Length(min=1, max=64))
    scanned_at = AwareDateTime()


class BatchSchema(Schema):
    scans = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1, max=500))


class GroupCheckinSchema(Schema):
    student_ids = fields.List(fields.Integer(), required=True, validate=validate.Length(min=1, max=200))
    direction = fields.String(required=True, validate=DIRECTION)
    scanned_at = AwareDateTime()
    # Optional: makes a retried request a replay (each pupil's scan uses "{nonce}:{student_id}").
    nonce = fields.String(validate=validate.Length(min=1, max=48))


class HistoryArgs(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
