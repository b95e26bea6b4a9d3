"""Progress of many pupils at once: class rows, a guardian's children, the whole-school spreadsheet.

Three grouped queries per call, whatever the number of pupils: net credits per pupil and kind for
the school year, the last stay in the year, and the open reviews. The numbers come from
`service.standing`, the function the transcript uses, so a class row, a spreadsheet cell and the
pupil's transcript never disagree.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from datetime import datetime, time
from decimal import Decimal

from sqlalchemy import func, select

from app.checkins.models import Checkin
from app.common import SHANGHAI, iso
from app.credits.models import LedgerEntry
from app.credits.rules import ACTIVITY_KIND_LABELS, school_year_bounds
from app.credits.service import active_rules
from app.extensions import db
from app.orgs.models import SchoolClass, Student
from app.reviews.models import Review
from app.transcripts.service import KIND_CASE, check_school_year, standing

OPEN_REVIEW_STATUSES = ("pending", "appealed")
SORT_KEYS = ("student_number", "name", "total", "met", "kinds", "last_activity_at", "flagged")

_KIND = KIND_CASE


def _year_window(school_year: str) -> tuple[datetime, datetime]:
    first, last = school_year_bounds(school_year)
    start = datetime.combine(first, time.min, tzinfo=SHANGHAI)
    end = datetime.combine(last, time.max, tzinfo=SHANGHAI)
    return start, end


def rows(students: list[Student], school_year: str) -> list[dict]:
    """One progress row per student (SPEC §8 class view), in the order given."""
    check_school_year(school_year)
    if not students:
        return []
    ids = [s.id for s in students]
    by_kind: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for student_id, kind, amount in db.session.execute(
        select(LedgerEntry.student_id, _KIND, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.student_id.in_(ids), LedgerEntry.school_year == school_year)
        .group_by(LedgerEntry.student_id, _KIND)
    ):
        by_kind[student_id][kind] = amount or Decimal("0")
    start, end = _year_window(school_year)
    last_at = dict(db.session.execute(
        select(Checkin.student_id, func.max(Checkin.entered_at))
        .where(Checkin.student_id.in_(ids), Checkin.entered_at >= start, Checkin.entered_at <= end)
        .group_by(Checkin.student_id)
    ).all())
    flagged = dict(db.session.execute(
        select(Review.student_id, func.count())
        .where(Review.student_id.in_(ids), Review.status.in_(OPEN_REVIEW_STATUSES))
        .group_by(Review.student_id)
    ).all())
    rules = active_rules()
    out = []
    for student in students:
        kinds = by_kind.get(student.id, {})
        total = sum(kinds.values(), Decimal("0"))
        last = last_at.get(student.id)
        out.append({
            "student_id": student.id,
            "student_number": student.student_number,
            "name": student.name,
            "grade": student.grade,
            "class_id": student.class_id,
            **standing(rules, student.grade, kinds, total),
            "last_activity_at": iso(last),
            "flagged": flagged.get(student.id, 0),
        })
    return out


def sort_rows(items: list[dict], sort: str) -> list[dict]:
    """Sort rows by one of SORT_KEYS ("-total" for descending); rows without a value go last."""
    descending = sort.startswith("-")
    key = sort.lstrip("-")

    def value(row):
        raw = row[key]
        if key == "total":
            raw = Decimal(raw)
        elif key == "kinds":
            raw = len(raw)
        return raw

    present = [r for r in items if r[key] is not None]
    missing = [r for r in items if r[key] is None]
    present.sort(key=lambda r: (value(r), r["student_number"]), reverse=descending)
    return present + missing


def class_students(class_id: int) -> list[Student]:
    return db.session.scalars(
        select(Student).where(Student.class_id == class_id).order_by(Student.student_number, Student.id)
    ).all()


# --------------------------------------------------------------------------------------------------
# Spreadsheets


HEADERS = ("学号", "姓名", "年级", "班级", "本学年学分", "年度要求", "是否达标", "已完成类别", "还差", "最近活动", "待复核")
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


def _sheet_title(name: str, taken: set[str]) -> str:
    base = _SHEET_FORBIDDEN.sub("_", name).strip("'") or "班级"
    title, n = base[:31], 2
    while title in taken:
        suffix = f"({n})"
        title, n = base[: 31 - len(suffix)] + suffix, n + 1
    taken.add(title)
    return title


def workbook(sheets: list[tuple[SchoolClass, list[dict]]], school_year: str) -> bytes:
    """An .xlsx with one sheet per class, Chinese headers, credits as numbers with two decimals."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    book.remove(book.active)
    taken: set[str] = set()
    widths = (12, 10, 6, 14, 12, 10, 10, 24, 28, 20, 8)
    for klass, items in sheets:
        sheet = book.create_sheet(_sheet_title(klass.name, taken))
        sheet.append(HEADERS)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in items:
            last = row["last_activity_at"]
            sheet.append([
                row["student_number"], row["name"], row["grade"], klass.name,
                Decimal(row["total"]), Decimal(row["required"]), "是" if row["met"] else "否",
                "、".join(ACTIVITY_KIND_LABELS.get(k, k) for k in row["kinds"]),
                "" if row["met"] else row["missing"]["hint"],
                datetime.fromisoformat(last).strftime("%Y-%m-%d %H:%M") if last else "",
                row["flagged"],
            ])
        for index in range(2, sheet.max_row + 1):
            sheet.cell(index, 5).number_format = "0.00"
            sheet.cell(index, 6).number_format = "0.00"
        for column, width in enumerate(widths, start=1):
            sheet.column_dimensions[get_column_letter(column)].width = width
        sheet.freeze_panes = "A2"
    if not sheets:
        book.create_sheet("无班级").append(HEADERS)
    book.properties.title = f"{school_year} 学年科普教育学分进度"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------
# A guardian's children


RECENT_STAYS = 5


def children(guardian_id: int, school_year: str) -> list[dict]:
    """Each linked child's year (SPEC §8): progress, what is missing, last stays, open reviews."""
    from app.checkins.service import checkin_view
    from app.orgs.models import GuardianLink

    students = db.session.scalars(
        select(Student).join(GuardianLink, GuardianLink.student_id == Student.id)
        .where(GuardianLink.guardian_id == guardian_id).order_by(Student.id)
    ).all()
    items = []
    for student, row in zip(students, rows(students, school_year), strict=True):
        stays = db.session.scalars(
            select(Checkin).where(Checkin.student_id == student.id)
            .order_by(Checkin.entered_at.desc(), Checkin.id.desc()).limit(RECENT_STAYS)
        ).all()
        credits = dict(db.session.execute(
            select(LedgerEntry.source_id, LedgerEntry.amount).where(
                LedgerEntry.student_id == student.id, LedgerEntry.source == "checkin",
                LedgerEntry.kind == "credit", LedgerEntry.source_id.in_([c.id for c in stays]))
        ).all()) if stays else {}
        recent = []
        for stay in stays:
            view = checkin_view(stay)
            amount = credits.get(stay.id)
            view["credits"] = None if amount is None else f"{amount:.2f}"
            recent.append(view)
        reviews = db.session.scalars(
            select(Review).where(Review.student_id == student.id, Review.status.in_(OPEN_REVIEW_STATUSES))
            .order_by(Review.created_at, Review.id)
        ).all()
        items.append({
            "student_id": student.id,
            "name": student.name,
            "grade": student.grade,
            "class_name": student.school_class.name,
            "school_name": student.school.name,
            "school_year": school_year,
            "total": row["total"],
            "required": row["required"],
            "met": row["met"],
            "kinds": row["kinds"],
            "missing": row["missing"],
            "last_activity_at": row["last_activity_at"],
            "recent": recent,
            "pending_reviews": [
                {"id": r.id, "kind": r.kind, "status": r.status, "reasons": r.reasons, "created_at": iso(r.created_at)}
                for r in reviews
            ],
        })
    return items
