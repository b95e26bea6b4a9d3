"""Transcript assembly: a student's school year from the ledger, against the yearly requirement."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from sqlalchemy import select

from app.common import fmt_credits, iso
from app.credits.models import LedgerEntry
from app.credits.rules import progress, school_year_bounds
from app.credits.service import active_rules
from app.errors import field_error
from app.extensions import db
from app.orgs.models import Student


def entry_view(entry: LedgerEntry) -> dict:
    """A ledger entry as the API shows it (every field of SPEC §6)."""
    return {
        "id": entry.id,
        "student_id": entry.student_id,
        "seq": entry.seq,
        "kind": entry.kind,
        "amount": fmt_credits(entry.amount),
        "activity_kind": entry.activity_kind,
        "competition": entry.competition,
        "source": entry.source,
        "source_id": entry.source_id,
        "reverses_id": entry.reverses_id,
        "venue_id": entry.venue_id,
        "occurred_at": iso(entry.occurred_at),
        "school_year": entry.school_year,
        "term": entry.term,
        "rule_version": entry.rule_version,
        "explanation": entry.explanation,
        "created_at": iso(entry.created_at),
        "created_by": entry.created_by,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def kind_of(entry: LedgerEntry) -> str:
    """The requirement kind an entry counts toward: an activity kind, competition, or other."""
    if entry.activity_kind:
        return entry.activity_kind
    if entry.source == "claim" or entry.competition:
        return "competition"
    return "other"


def check_school_year(school_year: str) -> str:
    try:
        school_year_bounds(school_year)
    except ValueError:
        raise field_error("school_year", "学年格式应为 2025-2026。") from None
    return school_year


def transcript(student: Student, school_year: str) -> dict:
    """The yearly transcript (SPEC §8) without its credential: totals, requirement, entries."""
    check_school_year(school_year)
    entries = db.session.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.student_id == student.id, LedgerEntry.school_year == school_year)
        .order_by(LedgerEntry.seq)
    ).all()
    by_kind: dict[str, Decimal] = defaultdict(Decimal)
    by_term: dict[str, Decimal] = {"1": Decimal("0"), "2": Decimal("0")}
    for entry in entries:
        by_kind[kind_of(entry)] += entry.amount
        by_term[str(entry.term)] += entry.amount
    rules = active_rules()
    state = progress(rules, student.grade, {k: v for k, v in by_kind.items() if k != "other"})
    total = sum(by_term.values(), Decimal("0"))
    return {
        "student": {
            "id": student.id,
            "name": student.name,
            "student_number": student.student_number,
            "grade": student.grade,
            "class_id": student.class_id,
            "class_name": student.school_class.name,
            "school_id": student.school_id,
            "school_name": student.school.name,
        },
        "school_year": school_year,
        "rule_version": rules.version,
        "total": fmt_credits(total),
        "required": fmt_credits(state.required),
        "met": state.met,
        "kinds": list(state.kinds),
        "missing": {
            "credits": fmt_credits(state.missing_credits),
            "kinds": state.missing_kinds,
            "one_of": list(state.missing_one_of),
            "hint": state.hint,
        },
        "by_kind": {kind: fmt_credits(amount) for kind, amount in sorted(by_kind.items())},
        "by_term": {term: fmt_credits(amount) for term, amount in by_term.items()},
        "entries": [entry_view(e) for e in entries],
        "credential": None,
    }
