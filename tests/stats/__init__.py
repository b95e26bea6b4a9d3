"""Bureau statistics tests. This module holds the brute-force reference: the statistics recomputed
from scratch over the ledger, pupils and venues in plain Python, with the transcript's own kind_of
and the rule engine's progress — the definitions of app.stats.service, written the obvious way."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from sqlalchemy import select

from app.credits.models import LedgerEntry
from app.credits.rules import SHANGHAI, progress
from app.extensions import db
from app.orgs.models import School, Student
from app.transcripts.service import kind_of
from app.venues.models import Venue

ENTRY_DIMS = ("activity_kind", "venue_kind", "month")


def _world(scope_district):
    schools = {s.id: s for s in db.session.scalars(select(School))}
    venues = {v.id: v for v in db.session.scalars(select(Venue))}
    pupils = {
        s.id: s for s in db.session.scalars(select(Student))
        if s.active and (scope_district is None or schools[s.school_id].district_id == scope_district)
    }
    return schools, venues, pupils


def _pupil_key(student, dims, schools):
    key = {}
    if "district" in dims:
        key["district"] = schools[student.school_id].district_id
    if "school" in dims:
        key["school"] = student.school_id
    if "grade" in dims:
        key["grade"] = student.grade
    return key


def _entry_key(entry, dims, venues):
    key = {}
    if "activity_kind" in dims:
        key["activity_kind"] = kind_of(entry)
    if "venue_kind" in dims:
        key["venue_kind"] = venues[entry.venue_id].kind if entry.venue_id else "none"
    if "month" in dims:
        key["month"] = entry.occurred_at.astimezone(SHANGHAI).strftime("%Y-%m")
    return key


def _freeze(key: dict) -> tuple:
    return tuple(sorted(key.items()))


def brute_credit_grid(*, scope_district, school_year, dims, rules) -> dict[tuple, dict]:
    """{frozen key: {"students", "participating", "credits" (Decimal), "met"}} — unsuppressed."""
    schools, venues, pupils = _world(scope_district)
    entry_dims = [d for d in dims if d in ENTRY_DIMS]
    population: dict[tuple, int] = defaultdict(int)
    for pupil in pupils.values():
        population[_freeze(_pupil_key(pupil, dims, schools))] += 1
    nets: dict[tuple, dict[int, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    by_kind: dict[int, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for entry in db.session.scalars(select(LedgerEntry).where(LedgerEntry.school_year == school_year)):
        pupil = pupils.get(entry.student_id)
        if pupil is None:
            continue
        key = {**_pupil_key(pupil, dims, schools), **_entry_key(entry, dims, venues)}
        nets[_freeze(key)][pupil.id] += entry.amount
        by_kind[pupil.id][kind_of(entry)] += entry.amount
    met_pupils = {
        sid for sid, kinds in by_kind.items()
        if progress(rules, pupils[sid].grade, {k: v for k, v in kinds.items() if k != "other"}).met
    }
    out: dict[tuple, dict] = {}
    for key, per_pupil in nets.items():
        pupil_part = _freeze({k: v for k, v in key if k not in ENTRY_DIMS})
        participating = sum(1 for v in per_pupil.values() if v > 0)
        credits = sum(per_pupil.values(), Decimal("0"))
        if entry_dims and not participating and not credits:
            continue
        out[key] = {
            "students": population[pupil_part],
            "participating": participating,
            "credits": credits,
            "met": 0 if entry_dims else sum(1 for sid in per_pupil if sid in met_pupils),
        }
    if not entry_dims:
        for key, students in population.items():
            out.setdefault(key, {"students": students, "participating": 0, "credits": Decimal("0"), "met": 0})
    return out


def brute_venue_grid(*, scope_district, school_year, by_month) -> dict[tuple, dict]:
    """{(venue_id[, month]): {"checkins", "students", "schools", "districts", "credits"}} — unsuppressed."""
    schools, venues, pupils = _world(scope_district)
    cells: dict[tuple, dict] = defaultdict(lambda: {"checkins": 0, "pupils": set(), "credits": Decimal("0")})
    for entry in db.session.scalars(select(LedgerEntry).where(LedgerEntry.school_year == school_year,
                                                              LedgerEntry.venue_id.is_not(None))):
        pupil = pupils.get(entry.student_id)
        if pupil is None:
            continue
        key = (entry.venue_id,)
        if by_month:
            key += (entry.occurred_at.astimezone(SHANGHAI).strftime("%Y-%m"),)
        cell = cells[key]
        cell["credits"] += entry.amount
        if entry.kind == "credit" and entry.source == "checkin":
            cell["checkins"] += 1
            cell["pupils"].add(pupil.id)
    out = {}
    for key, cell in cells.items():
        reached = [pupils[sid] for sid in cell["pupils"]]
        out[key] = {
            "checkins": cell["checkins"],
            "students": len(reached),
            "schools": len({p.school_id for p in reached}),
            "districts": len({schools[p.school_id].district_id for p in reached}),
            "credits": cell["credits"],
        }
    return out


def frozen(row_key: dict) -> tuple:
    return _freeze(row_key)
