"""Small pieces every domain package uses: paging, ids, school years, wire formats for times and
credits, and the error answers a route declares in the OpenAPI document."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from http import HTTPStatus
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, validate
from werkzeug.routing import IntegerConverter, PathConverter, UnicodeConverter

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Ids are PostgreSQL `integer` columns: a larger number is no id of ours, and sent to the database it
# would overflow the driver (a 500) instead of answering 404 / 422.
MAX_ID = 2**31 - 1
# Paging stops well before OFFSET overflows a 64-bit integer (page × per_page).
MAX_PAGE = 1_000_000


class IdConverter(IntegerConverter):
    """`<int:…>` in every URL: an id. One beyond the database's integer names nothing, so it is read
    as 0 (no row has that id) and the route answers 404 as for any missing object, instead of
    overflowing the database driver (500). (Refusing it in the converter would not do: werkzeug then
    answers 405 when the same path has a rule for another method.)"""

    def __init__(self, map, *args, **kwargs):  # noqa: A002 - werkzeug's name
        super().__init__(map, *args, **kwargs)
        self.min, self.max = 0, MAX_ID  # the range the OpenAPI document states (flask-smorest reads these)

    def to_python(self, value: str) -> int:
        number = int(value)
        return number if number <= MAX_ID else 0


class NulFreeStringConverter(UnicodeConverter):
    """`<name>` in a URL: no NUL character (PostgreSQL text cannot hold one), so `%00` matches no route (404)."""

    def __init__(self, map, minlength=1, maxlength=None, length=None):  # noqa: A002 - werkzeug's name
        super().__init__(map, minlength=minlength, maxlength=maxlength, length=length)
        self.regex = self.regex.replace("[^/]", "[^/\\x00]")


class NulFreePathConverter(PathConverter):
    """`<path:…>` in a URL, without a NUL character."""

    regex = "[^/\\x00][^\\x00]*?"


URL_CONVERTERS = {"int": IdConverter, "default": NulFreeStringConverter, "string": NulFreeStringConverter,
                  "path": NulFreePathConverter}

_NO_NUL = validate.Regexp(r"^[^\x00]*$", error="不能包含 NUL 控制字符。")


class Text(fields.String):
    """Free text from a client: any characters but NUL, which PostgreSQL text cannot hold (a 500
    there, found by bench/fuzz.sh on PostgreSQL); other validators are added to that one."""

    def __init__(self, **kwargs):
        extra = kwargs.pop("validate", None)
        validators = [_NO_NUL, *([] if extra is None else extra if isinstance(extra, list | tuple) else [extra])]
        super().__init__(validate=validators, **kwargs)


class Id(fields.Integer):
    """A database id in a body or a query: a positive integer that fits PostgreSQL's `integer`."""

    def __init__(self, **kwargs):
        validators = [validate.Range(min=1, max=MAX_ID)]
        extra = kwargs.pop("validate", None)
        if extra is not None:
            validators.extend(extra if isinstance(extra, list | tuple) else [extra])
        super().__init__(validate=validators, **kwargs)


_SCHOOL_YEAR = re.compile(r"^(20\d{2})-(2\d{3})$")


class SchoolYear(fields.String):
    """A school year "2025-2026" (1 September – 31 August): two consecutive years of this century."""

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {}).update(pattern=_SCHOOL_YEAR.pattern, example="2025-2026")
        super().__init__(validate=self._consecutive, **kwargs)

    @staticmethod
    def _consecutive(value: str) -> None:
        match = _SCHOOL_YEAR.match(value)
        if match is None or int(match.group(2)) != int(match.group(1)) + 1:
            raise ValidationError("学年格式应为 2025-2026（后一年比前一年大 1）。")


ERROR_DESCRIPTIONS = {
    400: "请求格式有误 (malformed request)",
    401: "未登录、凭证无效或已过期 (no, an invalid or an expired credential)",
    404: "不存在，或不在调用者的范围内 (not found, or outside the caller's scope: never 403, SPEC §2)",
    409: "与现有数据冲突 (conflict with existing data)",
    413: "上传内容过大 (request body too large)",
    422: "拒绝：原因见 error.code (refused: error.code names the reason)",
    429: "请求过于频繁 (rate limited; see Retry-After)",
}


BINARY = {"type": "string", "format": "binary"}


def file_responses(blp, *content_types: str, schema: dict | None = None, description: str = "OK"):
    """Declare the non-JSON answers of a route (an image, a PDF, a workbook …), one per content type."""

    def decorator(view):
        for content_type in content_types:
            view = blp.alt_response(200, schema=schema or BINARY, content_type=content_type,
                                    description=description, success=True)(view)
        return view

    return decorator


def documents(blp, status: int, schema, description: str | None = None):
    """Document the JSON body of an answer the view builds itself (a view dict or a pre-serialised
    Response): the schema describes the body in the OpenAPI document and is not applied at run time;
    tests/fuzz checks that real answers validate against it."""
    return blp.alt_response(status, schema=schema, description=description, success=True)


def error_responses(blp, *statuses: int):
    """Declare the error answers a route gives (in the error envelope) in its OpenAPI operation."""
    from app.errors import ErrorSchema

    def decorator(view):
        for status in statuses:
            description = ERROR_DESCRIPTIONS.get(status, HTTPStatus(status).phrase)
            view = blp.alt_response(status, schema=ErrorSchema, description=description)(view)
        return view

    return decorator


class AwareDateTime(fields.DateTime):
    """ISO 8601 in and out; a time sent without an offset is read as Asia/Shanghai (SPEC §9)."""

    # A time before 1901 would come back with Shanghai's local-mean-time offset (+08:05:43), which
    # is no RFC 3339 date-time (found by bench/fuzz.sh: an activity starting in 1256); this service
    # has no business outside this century anyway.
    EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)

    def _deserialize(self, value, attr, data, **kwargs):
        parsed = super()._deserialize(value, attr, data, **kwargs)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=SHANGHAI)
        try:
            parsed = parsed.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+05:00 has no UTC time
            parsed = None
        if parsed is None or not self.EARLIEST <= parsed < self.LATEST:
            raise ValidationError("时间超出范围（2000–2099 年）。")
        return parsed

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


class CreditsText(fields.String):
    """A credit amount in an answer a view formats itself (`fmt_credits`, f"{amount:.2f}"): a string
    with two decimals, "1.50" or "-0.50". For documenting bodies: the pattern is in the OpenAPI
    document, so tests/fuzz checks every amount it sees."""

    PATTERN = r"^-?\d+\.\d{2}$"

    def __init__(self, **kwargs):
        metadata = kwargs.setdefault("metadata", {})
        metadata.setdefault("pattern", self.PATTERN)
        metadata.setdefault("example", "1.50")
        super().__init__(**kwargs)


def fmt_credits(value) -> str:
    return f"{Decimal(value or 0):.2f}"


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(SHANGHAI).isoformat()


class PageArgs(Schema):
    """?page=&per_page= on every list (a list with a smaller page overrides `per_page`)."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
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
