"""What crosses the wire for districts, schools, classes and students."""

from marshmallow import Schema, fields, validate

from app.common import AwareDateTime, Id, PageArgs, Text


class DistrictSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = Text(required=True, validate=validate.Length(min=1, max=64))
    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,32}$"))


class SchoolSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = Text(required=True, validate=validate.Length(min=1, max=128))
    district_id = Id(required=True)
    pilot = fields.Boolean(load_default=False)
    latitude = fields.Float(allow_none=True, validate=validate.Range(-90, 90))
    longitude = fields.Float(allow_none=True, validate=validate.Range(-180, 180))


class ClassSchema(Schema):
    id = fields.Integer(dump_only=True)
    school_id = Id(required=True)
    grade = fields.Integer(required=True, validate=validate.Range(1, 9))
    name = Text(required=True, validate=validate.Length(min=1, max=64))


class StudentSchema(Schema):
    id = fields.Integer(dump_only=True)
    school_id = Id(required=True)
    class_id = Id(required=True)
    student_number = Text(required=True, validate=validate.Length(min=1, max=32))
    name = Text(required=True, validate=validate.Length(min=1, max=64))
    grade = fields.Integer(dump_only=True)
    active = fields.Boolean(load_default=True)


class StudentUpdateSchema(Schema):
    class_id = Id()
    name = Text(validate=validate.Length(min=1, max=64))
    active = fields.Boolean()


class StudentListArgs(PageArgs):
    school_id = Id()
    class_id = Id()


class SchoolListArgs(PageArgs):
    district_id = Id()


class InviteSchema(Schema):
    code = fields.String()
    expires_at = AwareDateTime()
    student_id = fields.Integer()


class ImportArgs(Schema):
    partial = fields.Boolean(load_default=False)


class RosterErrorSchema(Schema):
    """One problem in a roster file: the line (the header is line 1), the column and what is wrong."""

    row = fields.Integer(metadata={"description": "line in the file; the header is line 1"})
    column = fields.String(metadata={"description": "学号, 姓名, 年级 or 班级"})
    reason = fields.String()


class RosterImportSchema(Schema):
    """What an import did: pupils created, updated and unchanged, and the rows left out (?partial=true)."""

    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    skipped_rows = fields.Integer(metadata={"description": "rows with an error, not imported (?partial=true)"})
    errors = fields.List(fields.Nested(RosterErrorSchema), metadata={"description": "in line order"})
