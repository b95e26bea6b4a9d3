"""Reviews of doubtful stays and competition claims, their decision history, and closed terms."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import UTCDateTime, utcnow
from app.extensions import db

REVIEW_STATUSES = ("pending", "approved", "rejected", "appealed")
COMPETITION_LEVELS = ("national", "provincial", "city", "district", "school")
AWARDS = ("first", "second", "third", "participation")


class CompetitionClaim(db.Model):
    """竞赛获奖认定: a pupil's award, with its evidence file, waiting for a teacher's decision."""

    __tablename__ = "competition_claims"

    id: Mapped[int] = mapped_column(primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), index=True)
    competition: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(16))
    award: Mapped[str] = mapped_column(String(16))
    work_title: Mapped[str] = mapped_column(String(200))
    # work_title normalised (case, spaces, punctuation), so "same work" survives retyping.
    work_key: Mapped[str] = mapped_column(String(200))
    awarded_on: Mapped[date] = mapped_column(Date)
    evidence_name: Mapped[str] = mapped_column(String(200))
    evidence_path: Mapped[str] = mapped_column(String(255))
    evidence_type: Mapped[str] = mapped_column(String(64))
    evidence_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    submitted_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Review(db.Model):
    """One doubtful item (a flagged stay or a claim) in a school's review queue."""

    __tablename__ = "reviews"
    __table_args__ = (Index("ix_reviews_school_status", "school_id", "status", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # checkin | claim
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), index=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"))
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"), index=True)
    checkin_id: Mapped[int | None] = mapped_column(ForeignKey("checkins.id"), unique=True)
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("competition_claims.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # Why it is in the queue: [{"code": "shared_device", "message": "中文说明"}]
    reasons: Mapped[list] = mapped_column(JSON, default=list)
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    appeal_reason: Mapped[str | None] = mapped_column(String(500))
    appealed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    appealed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    credit_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReviewEvent(db.Model):
    """Every step of a review, append-only: who did what, when, and why."""

    __tablename__ = "review_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))  # created | approved | rejected | appealed
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TermClosure(db.Model):
    """学期归档: a school's term is frozen; later changes need an adjustment with a reason."""

    __tablename__ = "term_closures"
    __table_args__ = (UniqueConstraint("school_id", "school_year", "term"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"))
    school_year: Mapped[str] = mapped_column(String(9))
    term: Mapped[int] = mapped_column(Integer)
    closed_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
