"""Rule versions in the database, the rule set that computes new credits, and crediting a stay."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import case, func, select

from app.common import iso
from app.credits import ledger
from app.credits.models import LedgerEntry, RuleVersion
from app.credits.rules import (
    RuleSet,
    RuleSetError,
    Stay,
    StayHistory,
    evaluate_stay,
    local_date,
    local_day_bounds,
    parse_rule_set,
    school_year_of,
    term_of,
)
from app.db import utcnow
from app.errors import APIError
from app.extensions import db

_parsed: dict[str, RuleSet] = {}


def _parse(row: RuleVersion) -> RuleSet:
    # A stored version is never changed (there is no update path), so parse it once per process.
    cached = _parsed.get(row.version)
    if cached is None or cached.document != row.document:
        cached = _parsed[row.version] = parse_rule_set(row.document)
    return cached


def active_rules() -> RuleSet:
    """The rule set that computes new credits: the active version (parsed once per process)."""
    version = db.session.scalar(select(RuleVersion.version).where(RuleVersion.active.is_(True)))
    if version is None:
        raise APIError(503, "no_active_rules", "尚未启用学分规则，请管理员运行 flask rules load。")
    cached = _parsed.get(version)
    return cached if cached is not None else _parse(db.session.get(RuleVersion, version))


def rules_by_version(version: str) -> RuleSet:
    row = db.session.get(RuleVersion, version)
    if row is None:
        raise APIError(404, "not_found", "找不到该规则版本。")
    return _parse(row)


def add_rule_version(document: dict, *, activate: bool = False) -> RuleVersion:
    """Store a validated rule document as a new version (409 if the version exists)."""
    try:
        rules = parse_rule_set(document)
    except RuleSetError as exc:
        raise APIError(422, "rules_invalid", "学分规则文件有误。", {"fields": exc.errors}) from None
    if db.session.get(RuleVersion, rules.version) is not None:
        raise APIError(409, "conflict", f"规则版本 {rules.version} 已存在。")
    row = RuleVersion(version=rules.version, effective_from=rules.effective_from, document=rules.document)
    db.session.add(row)
    if activate:
        activate_version(row)
    return row


def activate_version(row: RuleVersion) -> None:
    """Make `row` the only active version (the caller commits)."""
    for other in db.session.scalars(select(RuleVersion).where(RuleVersion.active.is_(True))):
        other.active = False
    db.session.flush()
    row.active, row.activated_at = True, utcnow()


def stay_history(*, student_id: int, venue_id: int, occurred_at) -> StayHistory:
    """What caps a new stay, in one query over the student's stay entries of that term: net
    activity credits that local day, and stays credited (and not reversed) at the venue."""
    day_start, day_end = local_day_bounds(occurred_at)
    day = local_date(occurred_at)
    same_day = (LedgerEntry.occurred_at >= day_start) & (LedgerEntry.occurred_at < day_end)
    at_venue = LedgerEntry.venue_id == venue_id
    row = db.session.execute(
        select(
            func.sum(case((same_day, LedgerEntry.amount))),
            func.count(case((at_venue & (LedgerEntry.kind == "credit") & (LedgerEntry.amount > 0), 1))),
            func.count(case((at_venue & (LedgerEntry.kind == "reversal") & (LedgerEntry.amount < 0), 1))),
        ).where(
            LedgerEntry.student_id == student_id,
            LedgerEntry.source == "checkin",
            LedgerEntry.school_year == school_year_of(day),
            LedgerEntry.term == term_of(day),
        )
    ).one()
    day_total, credited, reversed_ = row
    return StayHistory(day_activity_total=day_total or Decimal("0"), venue_stays_this_term=credited - reversed_)


def credit_stay(checkin, *, actor_id: int | None) -> LedgerEntry:
    """Write the credit entry of a completed stay (0.00 included), computed by the active rules."""
    activity = checkin.activity
    venue = activity.venue
    rules = active_rules()
    stay = Stay(
        activity_kind=activity.kind,
        venue_kind=venue.kind,
        venue_level=venue.level,
        minutes=checkin.minutes,
        min_minutes=activity.min_minutes,
    )
    history = stay_history(student_id=checkin.student_id, venue_id=venue.id, occurred_at=checkin.entered_at)
    credit = evaluate_stay(rules, stay, history)
    explanation = {
        **credit.explanation,
        "checkin": {
            "id": checkin.id,
            "activity_id": activity.id,
            "activity_title": activity.title,
            "venue_id": venue.id,
            "venue_name": venue.name,
            "entered_at": iso(checkin.entered_at),
            "exited_at": iso(checkin.exited_at),
        },
        "history": {
            "day_activity_total": f"{history.day_activity_total:.2f}",
            "venue_stays_this_term": history.venue_stays_this_term,
        },
    }
    return ledger.append(
        student_id=checkin.student_id,
        kind="credit",
        amount=credit.amount,
        source="checkin",
        source_id=checkin.id,
        unique_key=f"checkin:{checkin.id}",
        activity_kind=activity.kind,
        venue_id=venue.id,
        occurred_at=checkin.entered_at,
        rule_version=rules.version,
        explanation=explanation,
        created_by=actor_id,
    )
