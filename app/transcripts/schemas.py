"""What crosses the wire for transcripts, progress views and credentials."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.transcripts.progress import SORT_KEYS

SCHOOL_YEAR = validate.Regexp(r"^\d{4}-\d{4}$", error="学年格式应为 2025-2026。")


class TranscriptArgs(Schema):
    school_year = fields.String(validate=SCHOOL_YEAR)
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "pdf")))


class YearArgs(Schema):
    school_year = fields.String(validate=SCHOOL_YEAR)


class ClassProgressArgs(Schema):
    school_year = fields.String(validate=SCHOOL_YEAR)
    sort = fields.String(load_default="student_number",
                         validate=validate.OneOf([*SORT_KEYS, *(f"-{k}" for k in SORT_KEYS)]))
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "xlsx")))


class MissingSchema(Schema):
    credits = fields.String()
    kinds = fields.Integer()
    one_of = fields.List(fields.String())
    hint = fields.String()


class ProgressRowSchema(Schema):
    student_id = fields.Integer()
    student_number = fields.String()
    name = fields.String()
    grade = fields.Integer()
    class_id = fields.Integer()
    total = fields.String()
    required = fields.String()
    met = fields.Boolean()
    kinds = fields.List(fields.String())
    missing = fields.Nested(MissingSchema)
    last_activity_at = fields.String(allow_none=True)
    flagged = fields.Integer(metadata={"description": "open reviews (pending or appealed) of this pupil"})


class ClassProgressSchema(Schema):
    class_id = fields.Integer()
    class_name = fields.String()
    school_year = fields.String()
    items = fields.List(fields.Nested(ProgressRowSchema))


class ChildSchema(Schema):
    student_id = fields.Integer()
    name = fields.String()
    grade = fields.Integer()
    class_name = fields.String()
    school_name = fields.String()
    school_year = fields.String()
    total = fields.String()
    required = fields.String()
    met = fields.Boolean()
    kinds = fields.List(fields.String())
    missing = fields.Nested(MissingSchema)
    last_activity_at = fields.String(allow_none=True)
    recent = fields.List(fields.Dict())
    pending_reviews = fields.List(fields.Dict())


class ChildrenSchema(Schema):
    items = fields.List(fields.Nested(ChildSchema))


class VerifyBody(Schema):
    credential = fields.String(required=True, validate=validate.Length(min=1, max=100_000))


class VerifyResultSchema(Schema):
    valid = fields.Boolean()
    reason = fields.String(allow_none=True, metadata={
        "description": "malformed, unknown_key, bad_signature, expired, not_yet_valid, revoked, unknown_credential"})
    message = fields.String()
    claims = fields.Dict(allow_none=True)


class RevokeBody(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class CredentialSchema(Schema):
    id = fields.String()
    student_id = fields.Integer()
    school_year = fields.String()
    kid = fields.String()
    verify_url = fields.String()
    status = fields.String()
    valid_from = fields.String()
    valid_until = fields.String()
    revoked_at = fields.String(allow_none=True)
    revocation_reason = fields.String(allow_none=True)
