"""Roster import: CSV or XLSX rows upserted by student number, all-or-nothing by default.

Headers may be Chinese (学号, 姓名, 年级, 班级) or English (student_number, name, grade, class).
Grades may be written 3, "3", "3年级" or "三年级". A class is found by name within the school and
created when missing. Every bad row is reported (row number as the spreadsheet shows it, column,
reason); nothing is imported when any row is bad unless `partial` is asked for. Re-importing the
same file changes nothing. Bulk statements keep 50,000 rows well under a minute.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile

from sqlalchemy import insert, select, update

from app.errors import APIError
from app.extensions import db
from app.orgs.models import School, SchoolClass, Student

HEADERS = {
    "学号": "student_number",
    "student_number": "student_number",
    "姓名": "name",
    "name": "name",
    "年级": "grade",
    "grade": "grade",
    "班级": "class",
    "class": "class",
    "班级名称": "class",
}
COLUMN_LABELS = {"student_number": "学号", "name": "姓名", "grade": "年级", "class": "班级"}
CHINESE_GRADES = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
                  "初一": 7, "初二": 8, "初三": 9}
BATCH = 2000


def _rows_from_csv(data: bytes):
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise APIError(422, "file_unreadable", "无法识别文件编码，请另存为 UTF-8 编码的 CSV 或 XLSX。")
    return list(csv.reader(io.StringIO(text)))


def _rows_from_xlsx(data: bytes):
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged file
        raise APIError(422, "file_unreadable", "无法读取该 Excel 文件，请检查文件是否损坏。") from exc
    sheet = workbook.worksheets[0]
    rows = [["" if cell is None else cell for cell in row] for row in sheet.iter_rows(values_only=True)]
    workbook.close()
    return rows


def read_rows(data: bytes, filename: str = "") -> list[list]:
    """The file's rows as lists of cells, whatever its format (decided by content, not name)."""
    if data[:4] == b"PK\x03\x04" and zipfile.is_zipfile(io.BytesIO(data)):
        return _rows_from_xlsx(data)
    return _rows_from_csv(data)


def parse_grade(value) -> int | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return value if 1 <= value <= 9 else None
    text = str(value).strip().removesuffix("年级").strip()
    if text.isdigit():
        number = int(text)
        return number if 1 <= number <= 9 else None
    return CHINESE_GRADES.get(text)


def _cell(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Excel stores 学号 20230001 as a number
    return re.sub(r"\s+", " ", str(value)).strip()


def validate_rows(rows: list[list]) -> tuple[list[dict], list[dict]]:
    """Parsed good rows and the errors of the bad ones ({"row", "column", "reason"})."""
    if not rows:
        raise APIError(422, "roster_empty", "文件为空。")
    header = [HEADERS.get(_cell(h).lower(), HEADERS.get(_cell(h))) for h in rows[0]]
    missing = [COLUMN_LABELS[c] for c in COLUMN_LABELS if c not in header]
    if missing:
        raise APIError(
            422, "roster_headers", f"缺少列：{'、'.join(missing)}。表头应为 学号、姓名、年级、班级。", {"missing": missing}
        )
    index = {name: header.index(name) for name in COLUMN_LABELS}
    good, errors, seen = [], [], {}
    for number, raw in enumerate(rows[1:], start=2):
        if not any(_cell(v) for v in raw):
            continue  # blank lines in spreadsheets are common and harmless
        cells = {name: _cell(raw[i]) if i < len(raw) else "" for name, i in index.items()}
        row_errors = []
        if not cells["student_number"] or len(cells["student_number"]) > 32:
            row_errors.append(("学号", "学号不能为空，且不超过 32 个字符。"))
        elif cells["student_number"] in seen:
            row_errors.append(("学号", f"学号与第 {seen[cells['student_number']]} 行重复。"))
        if not cells["name"] or len(cells["name"]) > 64:
            row_errors.append(("姓名", "姓名不能为空，且不超过 64 个字符。"))
        grade = parse_grade(raw[index["grade"]] if index["grade"] < len(raw) else "")
        if grade is None:
            row_errors.append(("年级", "年级应为 1–9 的数字（如 3 或 三年级）。"))
        if not cells["class"] or len(cells["class"]) > 64:
            row_errors.append(("班级", "班级不能为空，且不超过 64 个字符。"))
        if row_errors:
            errors.extend({"row": number, "column": col, "reason": reason} for col, reason in row_errors)
            continue
        seen[cells["student_number"]] = number
        good.append({"row": number, **cells, "grade": grade})
    return good, errors


def import_roster(*, school: School, data: bytes, filename: str = "", partial: bool = False) -> dict:
    """Upsert the roster into `school`; the caller commits. Raises 422 listing errors unless partial."""
    good, errors = validate_rows(read_rows(data, filename))
    classes = {
        c.name: c for c in db.session.scalars(select(SchoolClass).where(SchoolClass.school_id == school.id))
    }
    # A class's grade must agree with every row naming it.
    class_grades: dict[str, int] = {}
    checked = []
    for row in good:
        expected = classes[row["class"]].grade if row["class"] in classes else class_grades.get(row["class"])
        if expected is not None and expected != row["grade"]:
            errors.append({"row": row["row"], "column": "年级", "reason": f"班级“{row['class']}”是 {expected} 年级。"})
            continue
        class_grades.setdefault(row["class"], row["grade"])
        checked.append(row)
    errors.sort(key=lambda e: e["row"])
    if errors and not partial:
        raise APIError(
            422,
            "roster_invalid",
            f"花名册有 {len({e['row'] for e in errors})} 行有误，未导入任何数据。请修改后重新上传，或选择只导入正确的行。",
            {"errors": errors},
        )
    for name, grade in class_grades.items():
        if name not in classes:
            klass = SchoolClass(school_id=school.id, grade=grade, name=name)
            db.session.add(klass)
            classes[name] = klass
    db.session.flush()

    existing = {
        number: (sid, name, class_id)
        for sid, number, name, class_id in db.session.execute(
            select(Student.id, Student.student_number, Student.name, Student.class_id).where(
                Student.school_id == school.id
            )
        )
    }
    inserts, updates, unchanged = [], [], 0
    for row in checked:
        klass = classes[row["class"]]
        current = existing.get(row["student_number"])
        if current is None:
            inserts.append(
                {"school_id": school.id, "class_id": klass.id, "grade": klass.grade,
                 "student_number": row["student_number"], "name": row["name"], "active": True, "pass_version": 1}
            )
        elif current[1:] != (row["name"], klass.id):
            updates.append({"id": current[0], "name": row["name"], "class_id": klass.id, "grade": klass.grade})
        else:
            unchanged += 1
    for start in range(0, len(inserts), BATCH):
        db.session.execute(insert(Student), inserts[start : start + BATCH])
    for start in range(0, len(updates), BATCH):
        db.session.execute(update(Student), updates[start : start + BATCH])
    return {
        "created": len(inserts),
        "updated": len(updates),
        "unchanged": unchanged,
        "skipped_rows": len({e["row"] for e in errors}),
        "errors": errors,
    }
