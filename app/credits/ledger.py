"""The append-only, hash-chained ledger: append (locking the chain head), hash, verify.

Each entry's hash is SHA-256 over a canonical JSON of its fields and the previous entry's hash,
so altering, removing or reordering any entry breaks every hash after it. Appends lock the
student's row, the anchor of the chain, so concurrent appends for one student queue instead of
forking the chain; the unique (student_id, seq) key is the last line of defence.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import bindparam, event, insert, select
from sqlalchemy.orm import Session, make_transient_to_detached

from app.credits.models import GENESIS_HASH, LedgerEntry
from app.credits.rules import local_date, school_year_of, term_of
from app.db import Prepared, utcnow
from app.extensions import db
from app.observability import LEDGER_APPENDS
from app.orgs.models import Student

HASHED_FIELDS = (
    "student_id", "seq", "kind", "amount", "activity_kind", "competition", "source", "source_id",
    "unique_key", "reverses_id", "venue_id", "occurred_at", "school_year", "term", "rule_version",
    "explanation", "created_at", "created_by",
)


def _wire(value):
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def canonical_json(entry: LedgerEntry) -> bytes:
    """The bytes an entry's hash is computed over (sorted keys, no spaces, UTF-8)."""
    fields = {name: _wire(getattr(entry, name)) for name in HASHED_FIELDS}
    fields["prev_hash"] = entry.prev_hash
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(entry: LedgerEntry) -> str:
    return hashlib.sha256(canonical_json(entry)).hexdigest()


# The scan path runs these on every request: built once, so SQLAlchemy memoises their cache keys.
_LOCK_STUDENT = (
    select(Student).where(Student.id == bindparam("student_id")).with_for_update()
    .execution_options(populate_existing=True)
)
_HEAD_SELECT = (
    select(LedgerEntry.seq, LedgerEntry.hash).where(LedgerEntry.student_id == bindparam("student_id"))
    .order_by(LedgerEntry.seq.desc()).limit(1)
)
_HEAD = Prepared(_HEAD_SELECT)


def head_columns():
    """The chain head of the pupil bound as `student_id`, as two columns (head_seq, head_hash;
    NULL for an empty chain) for a caller that reads it with other facts in one statement — under
    the pupil's lock, and hands it to append(head=…)."""
    return (
        _HEAD_SELECT.with_only_columns(LedgerEntry.seq).scalar_subquery().label("head_seq"),
        _HEAD_SELECT.with_only_columns(LedgerEntry.hash).scalar_subquery().label("head_hash"),
    )


def is_locked(student_id: int) -> bool:
    """Whether this transaction holds the pupil's lock (lock_student or mark_locked)."""
    return student_id in db.session.info.get("locked_students", ())


_COLUMNS = (*HASHED_FIELDS, "prev_hash", "hash")
_INSERT = Prepared(insert(LedgerEntry.__table__).returning(LedgerEntry.__table__.c.id), keys=_COLUMNS)


def lock_student(student_id: int) -> Student | None:
    """Take the per-student lock and return the student, fresh (row lock on PostgreSQL; SQLite
    write transactions are already serial). Locking twice in one transaction costs nothing."""
    locked = db.session.info.setdefault("locked_students", set())
    if student_id in locked:
        return db.session.get(Student, student_id)
    student = db.session.scalar(_LOCK_STUDENT, {"student_id": student_id})
    locked.add(student_id)
    return student


def mark_locked(student_id: int) -> None:
    """Record that the caller has taken the student's row lock itself (checkins.service does, in
    the statement that reads what a scan needs), so appends in this transaction do not lock again."""
    db.session.info.setdefault("locked_students", set()).add(student_id)


def ensure_locked(student_id: int) -> None:
    """Take the pupil's lock unless this transaction holds it already (no statement then)."""
    if not is_locked(student_id):
        lock_student(student_id)


@event.listens_for(Session, "after_transaction_end")
def _forget_locks(session, transaction) -> None:
    # Row locks end with the outermost transaction; a released savepoint keeps them.
    if transaction.parent is None:
        session.info.pop("locked_students", None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_locks_on_rollback(session, previous_transaction) -> None:
    # A rollback to a savepoint releases the row locks taken inside it (PostgreSQL): forget them
    # all, which costs at most a re-lock of a pupil still held.
    session.info.pop("locked_students", None)


def append(
    *,
    student_id: int,
    kind: str,
    amount: Decimal,
    source: str,
    occurred_at: datetime,
    rule_version: str,
    explanation: dict,
    source_id: int | None = None,
    unique_key: str | None = None,
    activity_kind: str | None = None,
    competition: str | None = None,
    venue_id: int | None = None,
    reverses_id: int | None = None,
    created_by: int | None = None,
    head: tuple[int | None, str | None] | None = None,
) -> LedgerEntry:
    """Append one entry to the student's chain (within the caller's transaction) and return it.

    The entry is written with one Core INSERT (no unit-of-work flush). The LedgerEntry returned
    carries every column, its id included, but is detached: an entry is never changed, and one
    appended in a savepoint that rolls back must not linger in the session's identity map.

    `head` is the chain head (seq, hash) — (None, None) for an empty chain — when the caller has
    read it itself, after taking the pupil's lock in this transaction (head_columns()).
    """
    if head is None:
        ensure_locked(student_id)
        row = _HEAD.first(db.session, {"student_id": student_id})
        head = (row.seq, row.hash) if row else (None, None)
    elif not is_locked(student_id):
        raise RuntimeError("a chain head read without the pupil's lock may be stale")
    head_seq, head_hash = head
    day = local_date(occurred_at)
    entry = LedgerEntry(
        student_id=student_id,
        seq=(head_seq + 1) if head_seq is not None else 1,
        kind=kind,
        amount=Decimal(amount).quantize(Decimal("0.01")),
        activity_kind=activity_kind,
        competition=competition,
        source=source,
        source_id=source_id,
        unique_key=unique_key,
        reverses_id=reverses_id,
        venue_id=venue_id,
        occurred_at=occurred_at,
        school_year=school_year_of(day),
        term=term_of(day),
        rule_version=rule_version,
        explanation=explanation,
        created_at=utcnow(),
        created_by=created_by,
        prev_hash=head_hash if head_seq is not None else GENESIS_HASH,
    )
    entry.hash = entry_hash(entry)
    # A trigger queues the entry for the bureau roll-ups (app.stats.rollup.refresh).
    entry.id = _INSERT.scalar_one(db.session, {name: getattr(entry, name) for name in _COLUMNS})
    make_transient_to_detached(entry)
    LEDGER_APPENDS.labels(kind).inc()
    return entry


@dataclass
class ChainReport:
    student_id: int
    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None

    def as_dict(self) -> dict:
        return {"ok": self.ok, "entries": self.entries, "head": self.head, "first_bad_seq": self.first_bad_seq}


class _ChainChecker:
    """Walks one chain in seq order and remembers the first entry that does not fit."""

    def __init__(self, student_id: int):
        self.report = ChainReport(student_id, True, 0, GENESIS_HASH, None)

    def feed(self, entry: LedgerEntry) -> None:
        report = self.report
        report.entries += 1
        expected_seq = report.entries
        fits = entry.seq == expected_seq and entry.prev_hash == report.head and entry_hash(entry) == entry.hash
        if not fits and report.ok:
            report.ok, report.first_bad_seq = False, entry.seq if entry.seq == expected_seq else expected_seq
        report.head = entry.hash


def verify_chain(student_id: int) -> ChainReport:
    """Recompute one student's chain: ok, number of entries, head hash, first bad seq."""
    checker = _ChainChecker(student_id)
    for entry in db.session.scalars(
        select(LedgerEntry).where(LedgerEntry.student_id == student_id).order_by(LedgerEntry.seq)
    ):
        checker.feed(entry)
    return checker.report


def verify_all(batch: int = 5000):
    """Yield a ChainReport for every student with entries, streaming the whole ledger once."""
    checker = None
    stmt = select(LedgerEntry).order_by(LedgerEntry.student_id, LedgerEntry.seq).execution_options(yield_per=batch)
    for entry in db.session.scalars(stmt):
        if checker is None or checker.report.student_id != entry.student_id:
            if checker is not None:
                yield checker.report
            checker = _ChainChecker(entry.student_id)
        checker.feed(entry)
        db.session.expunge(entry)
    if checker is not None:
        yield checker.report
