"""Districts, schools, classes, students and the guardian links to them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import UTCDateTime, utcnow
from app.extensions import db


class District(db.Model):
    __tablename__ = "districts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(32), unique=True)


class School(db.Model):
    __tablename__ = "schools"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), index=True)
    pilot: Mapped[bool] = mapped_column(Boolean, default=False)
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]

    district: Mapped[District] = relationship()


class SchoolClass(db.Model):
    __tablename__ = "classes"
    __table_args__ = (
        UniqueConstraint("school_id", "name"),
        CheckConstraint("grade BETWEEN 1 AND 9", name="grade_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)
    grade: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))


class Student(db.Model):
    __tablename__ = "students"
    __table_args__ = (
        UniqueConstraint("school_id", "student_number"),
        CheckConstraint("grade BETWEEN 1 AND 9", name="grade_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"), index=True)
    student_number: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    grade: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped when a pass is reissued: passes signed with an older version are revoked.
    pass_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    school: Mapped[School] = relationship()
    school_class: Mapped[SchoolClass] = relationship()


class GuardianLink(db.Model):
    __tablename__ = "guardian_links"

    guardian_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GuardianInvite(db.Model):
    """A one-time code a school gives a parent to link (or register for) one child."""

    __tablename__ = "guardian_invites"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
