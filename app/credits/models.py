"""The append-only ledger and the rule-set versions it is computed under."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Money, UTCDateTime, utcnow
from app.extensions import db

ENTRY_KINDS = ("credit", "reversal", "adjustment")
ENTRY_SOURCES = ("checkin", "claim", "manual", "recompute")
GENESIS_HASH = "0" * 64


class LedgerEntry(db.Model):
    """One immutable line of a student's credit record, chained to the one before by hash."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("student_id", "seq"),
        Index("ix_ledger_student_year", "student_id", "school_year"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    amount = mapped_column(Money, nullable=False)
    activity_kind: Mapped[str | None] = mapped_column(String(16))
    competition: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[int | None] = mapped_column(Integer)
    # "checkin:17" for a credit, "reversal:42" for a reversal: one source earns one credit,
    # one entry is reversed once, whatever the concurrency. NULL (not unique) for adjustments.
    unique_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"))
    venue_id: Mapped[int | None] = mapped_column(ForeignKey("venues.id"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    school_year: Mapped[str] = mapped_column(String(9))
    term: Mapped[int] = mapped_column(Integer)
    rule_version: Mapped[str] = mapped_column(String(32))
    explanation: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class RuleVersion(db.Model):
    """A credit rule set as loaded from config/rules/*.yaml (the document is kept verbatim)."""

    __tablename__ = "rule_versions"

    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    effective_from: Mapped[date] = mapped_column(Date)
    document: Mapped[dict] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
