"""Bureau statistics as spreadsheets: xlsx (openpyxl) and csv (UTF-8 with BOM, so Excel reads the
Chinese headers), one row per answer row, suppressed numbers left empty."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from operator import itemgetter
from urllib.parse import quote

from flask import Response

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# (header, key in the answer row, type) per group-by dimension, then the numbers.
DIMENSION_COLUMNS = {
    "district": [("区ID", "district_id", int)],
    "school": [("区ID", "district_id", int), ("学校ID", "school_id", int)],
    "grade": [("年级", "grade", int)],
    "activity_kind": [("活动类型", "activity_kind", str)],
    "venue_kind": [("场馆类型", "venue_kind", str)],
    "month": [("月份", "month", str)],
}
CREDIT_NUMBERS = [
    ("学生数", "students", int),
    ("参与人数", "participating", int),
    ("参与率", "participation_rate", float),
    ("学分合计", "credits_total", Decimal),
    ("人均学分", "credits_mean", Decimal),
    ("达标率", "met_rate", float),
]
VENUE_COLUMNS = [
    ("场馆ID", "venue_id", int),
    ("场馆", "name", str),
    ("场馆类型", "kind", str),
    ("级别", "level", str),
    ("场馆所在区ID", "district_id", int),
]
VENUE_NUMBERS = [
    ("签到人次", "checkins", int),
    ("学生数", "students", int),
    ("覆盖学校数", "schools", int),
    ("覆盖区数", "districts", int),
    ("学分合计", "credits", Decimal),
]
LABEL = ("名称", "label", str)
SUPPRESSED = ("已抑制", "suppressed", bool)


def credit_columns(group_by: list[str]) -> list[tuple]:
    columns, seen = [], set()
    for dim in group_by:
        for col in DIMENSION_COLUMNS[dim]:
            if col[1] not in seen:
                seen.add(col[1])
                columns.append(col)
    return [*columns, LABEL, *CREDIT_NUMBERS, SUPPRESSED]


def venue_columns(group_by: list[str]) -> list[tuple]:
    month = [("月份", "month", str)] if "month" in group_by else []
    return [*VENUE_COLUMNS, *month, LABEL, *VENUE_NUMBERS, SUPPRESSED]


def _converter(kind, for_csv: bool):
    """How one column's value is written: None → empty, booleans → 是/否, credits as text (csv) or numbers."""
    if kind is bool:
        return lambda v: None if v is None else ("是" if v else "否")
    if kind is Decimal:
        return (lambda v: "" if v is None else v) if for_csv else (lambda v: None if v is None else Decimal(v))
    return (lambda v: "" if v is None else v) if for_csv else (lambda v: v)


def table(result: dict, columns: list[tuple], for_csv: bool) -> tuple[list[str], Iterable[Sequence]]:
    """(headers, rows) of the answer's items: dicts, or tuples in the order of result["fields"]
    (service.credit_stats(as_tuples=True)). The rows come lazily, one at a time."""
    headers = [c[0] for c in columns]
    fields = result.get("fields")
    if fields is None:
        getters = [(key, _converter(kind, for_csv)) for _h, key, kind in columns]
        return headers, ([convert(item.get(key)) for key, convert in getters] for item in result["items"])
    return headers, _tuple_rows(result["items"], fields, columns, for_csv)


def _tuple_rows(items: list[tuple], fields, columns: list[tuple], for_csv: bool) -> Iterator[Sequence]:
    """The rows of tuple items. For csv only the yes/no columns need converting (csv writes None as
    an empty cell and the credit strings as they are): one C-level itemgetter per row picks the rest."""
    at = {name: i for i, name in enumerate(fields)}
    items = [(*item, None) for item in items] if any(key not in at for _h, key, _k in columns) else items
    positions = [at.get(key, len(fields)) for _h, key, _k in columns]  # (a column the rows lack: empty)
    converters = [(i, _converter(kind, for_csv)) for i, (_h, _key, kind) in enumerate(columns)
                  if not (for_csv and kind is not bool)]
    pick = itemgetter(*positions) if len(positions) > 1 else (lambda item, i=positions[0]: (item[i],))
    if not converters:
        yield from map(pick, items)
        return
    for item in items:
        row = list(pick(item))
        for i, convert in converters:
            row[i] = convert(row[i])
        yield row


def to_csv(headers: list[str], rows: Iterable[Sequence]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")


def to_xlsx(headers: list[str], rows: Iterable[Sequence], title: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    sheet.append(headers)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(row)
    sheet.freeze_panes = "A2"
    for i, header in enumerate(headers, start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=i).column_letter].width = max(10, len(header) * 2 + 2)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def file_response(result: dict, fmt: str, *, venues: bool) -> Response:
    """The answer as an xlsx or csv download with Chinese headers."""
    columns = venue_columns(result["group_by"]) if venues else credit_columns(result["group_by"])
    title = f"科普活动指数 {result['school_year']}" if venues else f"科普学分统计 {result['school_year']}"
    headers, rows = table(result, columns, for_csv=fmt == "csv")
    if fmt == "csv":
        data, mimetype = to_csv(headers, rows), "text/csv"  # Response adds "; charset=utf-8" to text/*
    else:
        data, mimetype = to_xlsx(headers, rows, title), XLSX_MIME
    ascii_name = f"{'venue-index' if venues else 'credit-stats'}-{result['school_year']}.{fmt}"
    response = Response(data, mimetype=mimetype)
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(title.replace(' ', '-') + '.' + fmt)}"
    )
    response.headers["Cache-Control"] = "no-store"
    return response
