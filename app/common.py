"""Small pieces every domain package uses: paging, wire formats for times and credits."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, validate

SHANGHAI = ZoneInfo("Asia/Shanghai")


class AwareDateTime(fields.DateTime):
    """ISO 8601 in and out; a time sent without an offset is read as Asia/Shanghai (SPEC §9)."""

    def _deserialize(self, value, attr, data, **kwargs):
        parsed = super()._deserialize(value, attr, data, **kwargs)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=SHANGHAI)
        return parsed.astimezone(UTC)

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return value.astimezone(SHANGHAI).isoformat()


class Credits(fields.Field):
    """A credit amount on the wire: a string with two decimals ("1.50")."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else f"{Decimal(value):.2f}"

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            amount = Decimal(str(value))
        except Exception as exc:  # decimal.InvalidOperation and friends
            raise ValidationError("必须是两位小数的学分，例如 \"1.50\"。") from exc
        if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
            raise ValidationError("必须是两位小数的学分，例如 \"1.50\"。")
        return amount


def fmt_credits(value) -> str:
    return f"{Decimal(value or 0):.2f}"


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(SHANGHAI).isoformat()


class PageArgs(Schema):
    """?page=&per_page= on every list."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


_page_schemas: dict[type, type] = {}


def page_schema(item_schema: type[Schema]) -> type[Schema]:
    """The paged envelope {"items", "page", "per_page", "total"} for one item schema."""
    if item_schema not in _page_schemas:
        name = item_schema.__name__.removesuffix("Schema") + "PageSchema"
        _page_schemas[item_schema] = type(
            name,
            (Schema,),
            {
                "items": fields.List(fields.Nested(item_schema)),
                "page": fields.Integer(),
                "per_page": fields.Integer(),
                "total": fields.Integer(),
            },
        )
    return _page_schemas[item_schema]


def paginate(select_stmt, args: dict) -> dict:
    """Run a Select with paging and a total count; returns the page envelope as a dict."""
    from sqlalchemy import func, select

    from app.extensions import db

    page, per_page = args.get("page", 1), args.get("per_page", 50)
    total = db.session.scalar(select(func.count()).select_from(select_stmt.order_by(None).subquery()))
    items = db.session.scalars(select_stmt.limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": items, "page": page, "per_page": per_page, "total": total}
