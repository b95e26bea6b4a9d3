"""Bookings at activities (科普基地预约): class trips, single seats, the waiting list, attendance.

A booking holds seats of an activity: a teacher's class booking holds `seats` seats for pupils of
one class, a guardian's booking holds one seat for one child. `status` is `confirmed` (the seats
are held), `waitlisted` (候补: waiting for a seat, first come first served by id) or `cancelled`.

An attendance links a booking to the check-in that used one of its seats: one per pupil and
activity, written by the scan pipeline when a booked pupil enters (SPEC §12).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import UTCDateTime, utcnow
from app.extensions import db
from app.venues.models import Activity

BOOKING_KINDS = ("class", "guardian")
BOOKING_STATUSES = ("confirmed", "waitlisted", "cancelled")
STATUS_LABELS = {"confirmed": "已预约", "waitlisted": "候补中", "cancelled": "已取消"}
_LIVE = "status IN ('confirmed', 'waitlisted')"


class Booking(db.Model):
    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint("seats >= 1", name="seats_positive"),
        CheckConstraint(
            "(kind = 'class' AND class_id IS NOT NULL AND student_id IS NULL) OR "
            "(kind = 'guardian' AND student_id IS NOT NULL AND class_id IS NULL AND seats = 1)",
            name="kind_target",
        ),
        Index("ix_bookings_activity_status", "activity_id", "status", "id"),
        # One live booking per pupil and per class at one activity, whatever the concurrency.
        Index("uq_bookings_activity_student_live", "activity_id", "student_id", unique=True,
              sqlite_where=text(_LIVE), postgresql_where=text(_LIVE)),
        Index("uq_bookings_activity_class_live", "activity_id", "class_id", unique=True,
              sqlite_where=text(_LIVE), postgresql_where=text(_LIVE)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"))
    kind: Mapped[str] = mapped_column(String(16))  # class | guardian
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id"), index=True)
    student_id: Mapped[int | None] = mapped_column(ForeignKey("students.id"), index=True)
    seats: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(200))
    booked_by: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cancel_reason: Mapped[str | None] = mapped_column(String(200))

    activity: Mapped[Activity] = relationship()


class BookingAttendance(db.Model):
    """A booked pupil came: the check-in that used a seat of the booking (one per pupil and activity)."""

    __tablename__ = "booking_attendances"
    __table_args__ = (UniqueConstraint("activity_id", "student_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), index=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"))
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), index=True)
    checkin_id: Mapped[int] = mapped_column(ForeignKey("checkins.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
