"""Stays at activities (check-ins) and every scan received, accepted or refused."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import UTCDateTime, utcnow
from app.extensions import db
from app.venues.models import Activity

CHECKIN_STATUSES = ("open", "completed", "no_exit", "flagged", "rejected")
SOURCES = ("self", "guardian", "staff", "group")


class Checkin(db.Model):
    """One student's stay at one activity, from the entry scan to the exit scan."""

    __tablename__ = "checkins"
    __table_args__ = (
        Index("ix_checkins_student_status", "student_id", "status"),
        # An exit scan's stay: this pupil's latest at this activity. Without it SQLite searched by
        # activity_id (every stay ever made at that activity) and sorted them, on every exit scan.
        Index("ix_checkins_student_activity", "student_id", "activity_id", "entered_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"))
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"), index=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id"))
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    exited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Latest moment the stay can be closed: min(activity end, local midnight of entry day).
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    minutes: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    exit_source: Mapped[str | None] = mapped_column(String(16))
    device_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="open")
    # Integrity flags raised at entry; a flagged stay waits for review after it completes.
    flags: Mapped[list] = mapped_column(JSON, default=list)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    activity: Mapped[Activity] = relationship()


class Scan(db.Model):
    """Every scan that reached the service: the idempotency record and the audit of refusals."""

    __tablename__ = "scans"
    __table_args__ = (UniqueConstraint("actor_id", "nonce"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    nonce: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str | None] = mapped_column(String(8))
    student_id: Mapped[int | None] = mapped_column(ForeignKey("students.id"), index=True)
    activity_id: Mapped[int | None] = mapped_column(ForeignKey("activities.id"))
    checkin_id: Mapped[int | None] = mapped_column(ForeignKey("checkins.id"))
    device_id: Mapped[str | None] = mapped_column(String(128), index=True)
    scanned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    successful: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(32))
    # The answer given, replayed verbatim for the same nonce and body.
    response_status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict] = mapped_column(JSON)
