"""What crosses the wire for the ledger and rule-set versions (transcripts: app/transcripts/schemas.py)."""

from marshmallow import Schema, fields, validate

from app.common import CreditsText, PageArgs, SchoolYear


class LedgerArgs(PageArgs):
    school_year = SchoolYear()


class YearArgs(Schema):
    school_year = SchoolYear(required=True)


class VerifySchema(Schema):
    ok = fields.Boolean()
    entries = fields.Integer()
    head = fields.String()
    first_bad_seq = fields.Integer(allow_none=True)


class RuleVersionSummarySchema(Schema):
    """A rule-set version as the list shows it: without its document."""

    version = fields.String(dump_only=True)
    effective_from = fields.Date(dump_only=True)
    active = fields.Boolean(dump_only=True)
    activated_at = fields.DateTime(dump_only=True, allow_none=True)  # null until activated


class RuleVersionSchema(RuleVersionSummarySchema):
    document = fields.Dict(required=True)


class RuleVersionListSchema(Schema):
    items = fields.List(fields.Nested(RuleVersionSummarySchema), metadata={"description": "newest first"})


class RuleCreateSchema(Schema):
    version = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9._-]{1,32}$"))
    effective_from = fields.Date(required=True)
    document = fields.Dict(required=True)


class SchoolSimulationSchema(Schema):
    """One school's pupils with anything in the school year: under the active rules (before) and
    under the simulated version (after)."""

    school_id = fields.Integer()
    name = fields.String(allow_none=True)
    students = fields.Integer(metadata={"description": "pupils with a stay, a claim or a ledger entry that year"})
    students_changed = fields.Integer(metadata={"description": "pupils whose total or met would change"})
    met_before = fields.Integer(metadata={"description": "pupils meeting the yearly requirement now"})
    met_after = fields.Integer(metadata={"description": "pupils meeting it under the simulated version"})
    credits_before = CreditsText(metadata={"description": "the pupils' credits together, now"})
    credits_after = CreditsText(metadata={"description": "the pupils' credits together, under the simulated version"})


class SimulationSchema(Schema):
    """What a rule version would change in a school year, per school (nothing is written)."""

    version = fields.String()
    school_year = fields.String()
    students_changed = fields.Integer()
    schools = fields.List(fields.Nested(SchoolSimulationSchema), metadata={"description": "by school id"})


class RecomputeSchema(Schema):
    version = fields.String()
    school_year = fields.String()
    adjustments = fields.Integer(metadata={"description": "adjustment entries written (0 when already equal)"})
