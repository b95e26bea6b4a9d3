"""What crosses the wire for the bureau statistics (query arguments and answers)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.common import Id, SchoolYear, Text

FORMATS = ("json", "xlsx", "csv")


class CreditStatsArgs(Schema):
    school_year = SchoolYear(metadata={"description": "学年，默认本学年，如 2026-2027"})
    group_by = Text(
        required=True,
        metadata={"description": "1–2 个分组维度，逗号分隔：district, school, grade, activity_kind, venue_kind, month"},
    )
    district_id = Id(metadata={"description": "只统计该区（区教育局只能是本区）"})
    school_id = Id(metadata={"description": "只统计该校"})
    grade = fields.Integer(validate=validate.Range(1, 9), metadata={"description": "只统计该年级（学生当前年级）"})
    format = fields.String(load_default="json", validate=validate.OneOf(FORMATS))


class VenueStatsArgs(Schema):
    school_year = SchoolYear()
    group_by = fields.String(validate=validate.OneOf(("month",)), metadata={"description": "month：按月拆分"})
    district_id = Id(metadata={"description": "只统计该区的学生"})
    school_id = Id(metadata={"description": "只统计该校的学生"})
    format = fields.String(load_default="json", validate=validate.OneOf(FORMATS))


class CreditStatsRowSchema(Schema):
    district_id = fields.Integer()
    school_id = fields.Integer()
    grade = fields.Integer()
    activity_kind = fields.String()
    venue_kind = fields.String()
    month = fields.String()
    label = fields.String()
    students = fields.Integer(allow_none=True)
    participating = fields.Integer(allow_none=True)
    participation_rate = fields.Float(allow_none=True)
    credits_total = fields.String(allow_none=True, metadata={"description": "两位小数的学分，如 \"12.50\""})
    credits_mean = fields.String(allow_none=True)
    met_rate = fields.Float(allow_none=True, metadata={"description": "按活动类型/场馆类型/月份拆分时为 null"})
    suppressed = fields.Boolean(metadata={"description": "不足 5 名学生（或差分保护）时为 true，数值均为 null"})


class Filters(Schema):
    district_id = fields.Integer(allow_none=True)
    school_id = fields.Integer(allow_none=True)
    grade = fields.Integer(allow_none=True)


class CreditStatsSchema(Schema):
    school_year = fields.String()
    group_by = fields.List(fields.String())
    filters = fields.Nested(Filters)
    rule_version = fields.String()
    min_cell = fields.Integer()
    items = fields.List(fields.Nested(CreditStatsRowSchema))


class VenueStatsRowSchema(Schema):
    venue_id = fields.Integer()
    name = fields.String(allow_none=True)
    kind = fields.String(allow_none=True)
    level = fields.String(allow_none=True)
    district_id = fields.Integer(allow_none=True)
    month = fields.String()
    label = fields.String()
    checkins = fields.Integer(allow_none=True)
    students = fields.Integer(allow_none=True)
    schools = fields.Integer(allow_none=True)
    districts = fields.Integer(allow_none=True)
    credits = fields.String(allow_none=True)
    suppressed = fields.Boolean()


class VenueStatsSchema(Schema):
    school_year = fields.String()
    group_by = fields.List(fields.String())
    filters = fields.Nested(Filters)
    min_cell = fields.Integer()
    items = fields.List(fields.Nested(VenueStatsRowSchema))
