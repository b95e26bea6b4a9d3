"""Simulate and apply a rule version over a school year.

Both replay every accepted event of the year — completed stays (flagged ones once approved) and
approved competition claims — through `rules.evaluate_year`, in time order with every cap, and
compare per pupil and per kind with what the ledger holds from those sources (stays, claims and
earlier recomputes; manual adjustments stand as they are on both sides). `simulate` only reports
what would change, per school. `recompute` appends one adjustment entry per pupil and kind whose
total differs, so the ledger then equals the replay; a second run finds nothing to do.
Closed terms do not stop a recompute: it is the bureau's decision, recorded as adjustments.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, time
from decimal import Decimal

from sqlalchemy import func, select, union

from app.checkins.models import Checkin
from app.common import SHANGHAI
from app.credits import ledger
from app.credits.models import LedgerEntry
from app.credits.rules import RuleSet, YearClaim, YearStay, evaluate_year, progress, school_year_bounds
from app.db import utcnow
from app.extensions import db
from app.orgs.models import School, Student
from app.reviews.models import CompetitionClaim
from app.venues.models import Activity, Venue

RECOMPUTE_COMPETITION = "规则重算（竞赛）"
ZERO = Decimal("0")


def _bounds(school_year: str) -> tuple[datetime, datetime]:
    first, last = school_year_bounds(school_year)
    start = datetime.combine(first, time(0), tzinfo=SHANGHAI).astimezone(UTC)
    end = datetime.combine(last, time(23, 59, 59), tzinfo=SHANGHAI).astimezone(UTC)
    return start, end


def _events(student_ids: list[int], school_year: str) -> dict[int, tuple[list, list]]:
    start, end = _bounds(school_year)
    first, last = school_year_bounds(school_year)
    events: dict[int, tuple[list, list]] = defaultdict(lambda: ([], []))
    rows = db.session.execute(
        select(Checkin.student_id, Checkin.entered_at, Checkin.minutes, Checkin.venue_id, Activity.kind,
               Activity.min_minutes, Venue.kind, Venue.level)
        .join(Activity, Activity.id == Checkin.activity_id)
        .join(Venue, Venue.id == Checkin.venue_id)
        .where(Checkin.student_id.in_(student_ids), Checkin.status == "completed",
               Checkin.entered_at >= start, Checkin.entered_at <= end)
    )
    for sid, entered, minutes, venue_id, kind, min_minutes, venue_kind, level in rows:
        events[sid][0].append(YearStay(entered, kind, venue_kind, level, venue_id, minutes or 0, min_minutes))
    claims = db.session.execute(
        select(CompetitionClaim.student_id, CompetitionClaim.awarded_on, CompetitionClaim.level,
               CompetitionClaim.award, CompetitionClaim.work_key)
        .where(CompetitionClaim.student_id.in_(student_ids), CompetitionClaim.status == "approved",
               CompetitionClaim.awarded_on >= first, CompetitionClaim.awarded_on <= last)
    )
    for sid, day, level, award, key in claims:
        events[sid][1].append(YearClaim(day, level, award, key))
    return events


def _kind(activity_kind: str | None, source: str, competition: str | None) -> str:
    if activity_kind:
        return activity_kind
    return "competition" if source == "claim" or competition else "other"


def _ledger_totals(student_ids: list[int], school_year: str) -> tuple[dict, dict]:
    """(replayable totals by pupil and kind, manual totals by pupil and kind)."""
    replayable: dict[int, dict[str, Decimal]] = defaultdict(dict)
    manual: dict[int, dict[str, Decimal]] = defaultdict(dict)
    rows = db.session.execute(
        select(LedgerEntry.student_id, LedgerEntry.activity_kind, LedgerEntry.source, LedgerEntry.competition,
               func.sum(LedgerEntry.amount))
        .where(LedgerEntry.student_id.in_(student_ids), LedgerEntry.school_year == school_year)
        .group_by(LedgerEntry.student_id, LedgerEntry.activity_kind, LedgerEntry.source, LedgerEntry.competition)
    )
    for sid, activity_kind, source, competition, amount in rows:
        target = manual if source == "manual" else replayable
        kind = _kind(activity_kind, source, competition)
        target[sid][kind] = target[sid].get(kind, ZERO) + (amount or ZERO)
    return replayable, manual


def _students(school_year: str, batch: int = 2000) -> Iterator[list[Student]]:
    """Pupils with anything in that year (events or entries), in batches, by school."""
    start, end = _bounds(school_year)
    first, last = school_year_bounds(school_year)
    ids = union(
        select(Checkin.student_id).where(Checkin.entered_at >= start, Checkin.entered_at <= end),
        select(LedgerEntry.student_id).where(LedgerEntry.school_year == school_year),
        select(CompetitionClaim.student_id).where(CompetitionClaim.awarded_on >= first,
                                                  CompetitionClaim.awarded_on <= last),
    ).subquery()
    query = select(Student).where(Student.id.in_(select(ids.c[0]))).order_by(Student.school_id, Student.id)
    chunk: list[Student] = []
    for student in db.session.scalars(query):
        chunk.append(student)
        if len(chunk) >= batch:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _compare(rules: RuleSet, current_rules: RuleSet, school_year: str):
    """Yield (student, before_by_kind, after_by_kind) for every pupil with something that year."""
    for chunk in _students(school_year):
        ids = [s.id for s in chunk]
        events = _events(ids, school_year)
        replayable, manual = _ledger_totals(ids, school_year)
        for student in chunk:
            stays, claims = events.get(student.id, ([], []))
            after = evaluate_year(rules, stays, claims)
            yield student, replayable.get(student.id, {}), after, manual.get(student.id, {})


def _combined(*parts: dict[str, Decimal]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for part in parts:
        for kind, amount in part.items():
            out[kind] += amount
    return dict(out)


def _met(rules: RuleSet, grade: int, by_kind: dict[str, Decimal]) -> bool:
    return progress(rules, grade, {k: v for k, v in by_kind.items() if k != "other"}).met


def simulate(rules: RuleSet, current_rules: RuleSet, school_year: str) -> dict:
    """What `rules` would change, per school, without writing anything."""
    schools: dict[int, dict] = {}
    changed_total = 0
    for student, before, after, manual in _compare(rules, current_rules, school_year):
        old, new = _combined(before, manual), _combined(after, manual)
        old_total, new_total = sum(old.values(), ZERO), sum(new.values(), ZERO)
        met_before, met_after = _met(current_rules, student.grade, old), _met(rules, student.grade, new)
        row = schools.setdefault(student.school_id, {
            "school_id": student.school_id, "students": 0, "students_changed": 0, "met_before": 0,
            "met_after": 0, "credits_before": ZERO, "credits_after": ZERO,
        })
        row["students"] += 1
        row["met_before"] += met_before
        row["met_after"] += met_after
        row["credits_before"] += old_total
        row["credits_after"] += new_total
        if old_total != new_total or met_before != met_after:
            row["students_changed"] += 1
            changed_total += 1
    names = dict(db.session.execute(select(School.id, School.name).where(School.id.in_(list(schools)))).all())
    rows = []
    for school_id, row in sorted(schools.items()):
        row["name"] = names.get(school_id)
        row["credits_before"] = f"{row['credits_before']:.2f}"
        row["credits_after"] = f"{row['credits_after']:.2f}"
        rows.append(row)
    return {"version": rules.version, "school_year": school_year, "students_changed": changed_total, "schools": rows}


def recompute(rules: RuleSet, current_rules: RuleSet, school_year: str, *, actor_id: int | None,
              progress_cb=None) -> int:
    """Append adjustments so that every pupil's ledger equals the replay under `rules`."""
    first, last = school_year_bounds(school_year)
    now = utcnow()
    end_of_year = datetime.combine(last, time(12), tzinfo=SHANGHAI).astimezone(UTC)
    occurred_at = min(now, end_of_year) if now >= datetime.combine(first, time(0), tzinfo=SHANGHAI) else end_of_year
    written = 0
    for student, before, after, _ in _compare(rules, current_rules, school_year):
        for kind in sorted(set(before) | set(after)):
            if kind == "other":
                continue
            delta = after.get(kind, ZERO) - before.get(kind, ZERO)
            if delta == 0:
                continue
            ledger.append(
                student_id=student.id, kind="adjustment", amount=delta, source="recompute",
                activity_kind=None if kind == "competition" else kind,
                competition=RECOMPUTE_COMPETITION if kind == "competition" else None,
                occurred_at=occurred_at, rule_version=rules.version, created_by=actor_id,
                explanation={
                    "summary": f"按规则 {rules.version} 重算 {school_year} 学年：{kind} 由 "
                               f"{before.get(kind, ZERO):.2f} 调整为 {after.get(kind, ZERO):.2f}（{delta:+.2f}）",
                    "kind": kind, "before": f"{before.get(kind, ZERO):.2f}", "after": f"{after.get(kind, ZERO):.2f}",
                    "rule_version": rules.version, "school_year": school_year,
                },
            )
            written += 1
        if progress_cb:
            progress_cb(1)
    db.session.commit()
    return written
