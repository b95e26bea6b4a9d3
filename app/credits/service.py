"""Rule versions in the database, the rule set that computes new credits, and crediting a stay."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import bindparam, case, func, select

from app.common import iso
from app.credits import ledger
from app.credits.models import LedgerEntry, RuleVersion
from app.credits.rules import (
    CompetitionHistory,
    RuleSet,
    RuleSetError,
    Stay,
    StayHistory,
    evaluate_competition,
    evaluate_stay,
    local_date,
    local_day_bounds,
    parse_rule_set,
    school_year_of,
    term_of,
)
from app.db import Prepared, utcnow
from app.errors import APIError
from app.extensions import db

_parsed: dict[str, RuleSet] = {}


def _parse(row: RuleVersion) -> RuleSet:
    # A stored version is never changed (there is no update path), so parse it once per process.
    cached = _parsed.get(row.version)
    if cached is None or cached.document != row.document:
        cached = _parsed[row.version] = parse_rule_set(row.document)
    return cached


_ACTIVE_VERSION = select(RuleVersion.version).where(RuleVersion.active.is_(True))


def active_rules() -> RuleSet:
    """The rule set that computes new credits: the active version (parsed once per process)."""
    version = db.session.scalar(_ACTIVE_VERSION)
    if version is None:
        raise APIError(503, "no_active_rules", "尚未启用学分规则，请管理员运行 flask rules load。")
    cached = _parsed.get(version)
    return cached if cached is not None else _parse(db.session.get(RuleVersion, version))


def rules_named(version: str) -> RuleSet:
    """The parsed rule set of a stored version (cached per process: versions never change)."""
    cached = _parsed.get(version)
    return cached if cached is not None else rules_by_version(version)


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


def _stay_history_statement():
    same_day = (LedgerEntry.occurred_at >= bindparam("day_start")) & (LedgerEntry.occurred_at < bindparam("day_end"))
    at_venue = LedgerEntry.venue_id == bindparam("venue_id")
    return select(
        func.sum(case((same_day, LedgerEntry.amount))),
        func.count(case((at_venue & (LedgerEntry.kind == "credit") & (LedgerEntry.amount > 0), 1))),
        func.count(case((at_venue & (LedgerEntry.kind == "reversal") & (LedgerEntry.amount < 0), 1))),
    ).where(
        LedgerEntry.student_id == bindparam("student_id"),
        LedgerEntry.source == "checkin",
        LedgerEntry.school_year == bindparam("school_year"),
        LedgerEntry.term == bindparam("term"),
    )


_STAY_HISTORY = Prepared(_stay_history_statement())
# What an exit scan reads before its credit, in one statement: the caps' history and the chain head
# (the pupil is locked first, so the head cannot move before the append).
_STAY_HISTORY_AND_HEAD = Prepared(_stay_history_statement().add_columns(*ledger.head_columns()))


def stay_history(*, student_id: int, venue_id: int, occurred_at) -> StayHistory:
    """What caps a new stay, in one query over the student's stay entries of that term: net
    activity credits that local day, and stays credited (and not reversed) at the venue."""
    return _history(_STAY_HISTORY.first(db.session, _history_params(student_id, venue_id, occurred_at)))


def _history_params(student_id: int, venue_id: int, occurred_at) -> dict:
    day_start, day_end = local_day_bounds(occurred_at)
    day = local_date(occurred_at)
    return {"day_start": day_start, "day_end": day_end, "venue_id": venue_id, "student_id": student_id,
            "school_year": school_year_of(day), "term": term_of(day)}


def _history(row) -> StayHistory:
    day_total, credited, reversed_ = row[:3]
    return StayHistory(day_activity_total=day_total or Decimal("0"), venue_stays_this_term=credited - reversed_)


def credit_stay(checkin, *, actor_id: int | None, rules: RuleSet | None = None) -> LedgerEntry:
    """Write the credit entry of a completed stay (0.00 included), computed by the active rules
    (`rules`, when the caller has already read which set is active)."""
    activity = checkin.activity
    venue = activity.venue
    rules = rules or active_rules()
    stay = Stay(
        activity_kind=activity.kind,
        venue_kind=venue.kind,
        venue_level=venue.level,
        minutes=checkin.minutes,
        min_minutes=activity.min_minutes,
    )
    ledger.ensure_locked(checkin.student_id)  # first: the head read below must stay the head
    row = _STAY_HISTORY_AND_HEAD.first(db.session, _history_params(checkin.student_id, venue.id, checkin.entered_at))
    history = _history(row)
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
        head=(row.head_seq, row.head_hash),
    )


def reverse_entry(entry: LedgerEntry, *, reason: str, actor_id: int | None) -> LedgerEntry:
    """Append the reversal of a credit (once per entry: the unique key sees to it)."""
    return ledger.append(
        student_id=entry.student_id,
        kind="reversal",
        amount=-entry.amount,
        source=entry.source,
        source_id=entry.source_id,
        unique_key=f"reversal:{entry.id}",
        reverses_id=entry.id,
        activity_kind=entry.activity_kind,
        competition=entry.competition,
        venue_id=entry.venue_id,
        occurred_at=entry.occurred_at,
        rule_version=entry.rule_version,
        explanation={
            "summary": f"撤销第 {entry.seq} 条记录（{entry.amount:.2f} 学分）：{reason}",
            "reverses": {"id": entry.id, "seq": entry.seq, "amount": f"{entry.amount:.2f}"},
            "reason": reason,
        },
        created_by=actor_id,
    )


def _standing_claim_credits(student_id: int, school_year: str):
    """(entry, claim) pairs of the year's claim credits that have not been reversed."""
    from app.reviews.models import CompetitionClaim

    reversed_ids = select(LedgerEntry.reverses_id).where(
        LedgerEntry.student_id == student_id, LedgerEntry.reverses_id.is_not(None)
    )
    return db.session.execute(
        select(LedgerEntry, CompetitionClaim)
        .join(CompetitionClaim, CompetitionClaim.id == LedgerEntry.source_id)
        .where(
            LedgerEntry.student_id == student_id,
            LedgerEntry.source == "claim",
            LedgerEntry.kind == "credit",
            LedgerEntry.school_year == school_year,
            LedgerEntry.id.not_in(reversed_ids),
        )
    ).all()


def credit_claim(claim, *, actor_id: int | None) -> LedgerEntry:
    """Credit an approved competition claim: the table, the same work once at its highest (a higher
    award reverses the earlier entry), the yearly cap. Writes the entry even when it is 0.00."""
    from datetime import UTC, datetime, time

    from app.common import SHANGHAI

    rules = active_rules()
    occurred_at = datetime.combine(claim.awarded_on, time(12), tzinfo=SHANGHAI).astimezone(UTC)
    school_year = school_year_of(claim.awarded_on)
    ledger.lock_student(claim.student_id)
    standing = _standing_claim_credits(claim.student_id, school_year)
    year_total = sum((entry.amount for entry, _ in standing), Decimal("0"))
    same_work = [entry for entry, other in standing if other.work_key == claim.work_key]
    best = max(same_work, key=lambda entry: entry.amount, default=None)
    result = evaluate_competition(
        rules, claim.level, claim.award,
        CompetitionHistory(year_competition_total=year_total, same_work_best=best.amount if best else None),
    )
    if result.replaces_previous and best is not None:
        reverse_entry(best, reason=f"同一作品《{claim.work_title}》获得更高奖项，按新奖项计", actor_id=actor_id)
    explanation = {
        **result.explanation,
        "claim": {
            "id": claim.id,
            "competition": claim.competition,
            "work_title": claim.work_title,
            "awarded_on": claim.awarded_on.isoformat(),
        },
    }
    return ledger.append(
        student_id=claim.student_id,
        kind="credit",
        amount=result.amount,
        source="claim",
        source_id=claim.id,
        unique_key=f"claim:{claim.id}",
        competition=claim.competition,
        occurred_at=occurred_at,
        rule_version=rules.version,
        explanation=explanation,
        created_by=actor_id,
    )
