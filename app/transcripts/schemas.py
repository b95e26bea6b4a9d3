"""What crosses the wire for transcripts, progress views and credentials."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.common import SchoolYear, Text
from app.transcripts.progress import SORT_KEYS


class TranscriptArgs(Schema):
    school_year = SchoolYear()
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "pdf")))


class YearArgs(Schema):
    school_year = SchoolYear()


class ClassProgressArgs(Schema):
    school_year = SchoolYear()
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


class LedgerEntrySchema(Schema):
    """One ledger entry (SPEC §6) as transcripts, the ledger and adjustments show it."""

    id = fields.Integer()
    student_id = fields.Integer()
    seq = fields.Integer()
    kind = fields.String(metadata={"description": "credit, reversal or adjustment"})
    amount = fields.String(metadata={"description": "two decimals, negative for a reversal: \"-1.50\""})
    activity_kind = fields.String(allow_none=True)
    competition = fields.String(allow_none=True)
    source = fields.String(metadata={"description": "checkin, claim, manual or recompute"})
    source_id = fields.Integer(allow_none=True)
    reverses_id = fields.Integer(allow_none=True)
    venue_id = fields.Integer(allow_none=True)
    occurred_at = fields.String(allow_none=True)
    school_year = fields.String()
    term = fields.Integer()
    rule_version = fields.String(allow_none=True)
    explanation = fields.Dict(allow_none=True)
    created_at = fields.String()
    created_by = fields.Integer(allow_none=True)
    prev_hash = fields.String()
    hash = fields.String()


class TranscriptStudentSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    student_number = fields.String()
    grade = fields.Integer()
    class_id = fields.Integer()
    class_name = fields.String()
    school_id = fields.Integer()
    school_name = fields.String()


class TranscriptCredentialSchema(Schema):
    id = fields.String()
    type = fields.List(fields.String())
    format = fields.String()
    jwt = fields.String(metadata={"description": "the signed VC-JWT (verify with /.well-known/jwks.json)"})
    kid = fields.String()
    verify_url = fields.String()
    status_url = fields.String()
    valid_from = fields.String()
    valid_until = fields.String()
    status = fields.String()
    entries = fields.Integer()
    ledger_head = fields.String()


class TranscriptSchema(Schema):
    """学分报告单: the year's totals against the requirement, every entry, and the signed credential."""

    student = fields.Nested(TranscriptStudentSchema)
    school_year = fields.String()
    rule_version = fields.String()
    total = fields.String()
    required = fields.String()
    met = fields.Boolean()
    kinds = fields.List(fields.String())
    missing = fields.Nested(MissingSchema)
    by_kind = fields.Dict(keys=fields.String(), values=fields.String())
    by_term = fields.Dict(keys=fields.String(), values=fields.String())
    entries = fields.List(fields.Nested(LedgerEntrySchema))
    credential = fields.Nested(TranscriptCredentialSchema, allow_none=True)


class VerifyBody(Schema):
    credential = Text(required=True, validate=validate.Length(min=1, max=100_000))


class VerifyResultSchema(Schema):
    valid = fields.Boolean()
    reason = fields.String(allow_none=True, metadata={
        "description": "malformed, unknown_key, bad_signature, expired, not_yet_valid, revoked, unknown_credential"})
    message = fields.String()
    claims = fields.Dict(allow_none=True)


class RevokeBody(Schema):
    reason = Text(required=True, validate=validate.Length(min=1, max=500))


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


class RevokedCredentialSchema(Schema):
    id = fields.String(metadata={"description": "the credential's verify URL"})
    revocation_reason = fields.String(data_key="revocationReason")


class CredentialStatusSchema(Schema):
    """A credential's credentialStatus: a 1EdTech revocation list of zero entries, or one once revoked."""

    id = fields.String(metadata={"description": "this status document's URL"})
    issuer = fields.String(metadata={"description": "the school's URL"})
    status = fields.String(metadata={"description": "active or revoked"})
    revoked_at = fields.String(allow_none=True)
    revoked_credentials = fields.List(fields.Nested(RevokedCredentialSchema), data_key="revokedCredentials")
