"""Accounts and what each account is scoped to (classes, venues)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import UTCDateTime, utcnow
from app.extensions import db

ROLES = (
    "student",
    "guardian",
    "teacher",
    "school_admin",
    "venue_staff",
    "district_officer",
    "city_officer",
    "admin",
)


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    display_name: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    student_id: Mapped[int | None] = mapped_column(ForeignKey("students.id"), unique=True)
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"), index=True)
    district_id: Mapped[int | None] = mapped_column(ForeignKey("districts.id"))
    # Raised to invalidate every refresh token issued before (logout everywhere, password change).
    token_generation: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TeacherClass(db.Model):
    __tablename__ = "teacher_classes"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"), primary_key=True, index=True)


class StaffVenue(db.Model):
    __tablename__ = "staff_venues"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id"), primary_key=True, index=True)
