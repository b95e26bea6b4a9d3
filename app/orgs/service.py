"""Districts, schools, classes, students and guardian links: the business rules."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select

from app.auth.models import User
from app.auth.passwords import hash_password
from app.db import utcnow
from app.errors import APIError, field_error, not_found
from app.extensions import db
from app.orgs.models import District, GuardianInvite, GuardianLink, School, SchoolClass, Student

INVITE_DAYS = 14
# No 0/O/1/I/L: a parent types the code from a printed slip.
INVITE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def create_district(*, name: str, code: str) -> District:
    """A new district; its code is unique."""
    if db.session.scalar(select(District.id).where(District.code == code)):
        raise field_error("code", "区代码已存在。", 409)
    district = District(name=name, code=code)
    db.session.add(district)
    db.session.commit()
    return district


def create_school(*, name: str, district_id: int, pilot: bool = False, latitude=None, longitude=None) -> School:
    """A new school in an existing district."""
    if db.session.get(District, district_id) is None:
        raise field_error("district_id", "区不存在。")
    school = School(name=name, district_id=district_id, pilot=pilot, latitude=latitude, longitude=longitude)
    db.session.add(school)
    db.session.commit()
    return school


def create_class(*, school_id: int, grade: int, name: str) -> SchoolClass:
    """A new class; names are unique within a school."""
    if db.session.get(School, school_id) is None:
        raise field_error("school_id", "学校不存在。")
    if db.session.scalar(select(SchoolClass.id).where(SchoolClass.school_id == school_id, SchoolClass.name == name)):
        raise field_error("name", "该校已有同名班级。", 409)
    klass = SchoolClass(school_id=school_id, grade=grade, name=name)
    db.session.add(klass)
    db.session.commit()
    return klass


def create_student(*, school_id: int, class_id: int, student_number: str, name: str, active: bool = True) -> Student:
    """A new student; the grade comes from the class; the student number is unique per school."""
    klass = db.session.get(SchoolClass, class_id)
    if klass is None or klass.school_id != school_id:
        raise field_error("class_id", "班级不存在或不属于该学校。")
    exists = select(Student.id).where(Student.school_id == school_id, Student.student_number == student_number)
    if db.session.scalar(exists):
        raise field_error("student_number", "该学号在本校已存在。", 409)
    student = Student(
        school_id=school_id, class_id=class_id, grade=klass.grade, student_number=student_number, name=name, active=active
    )
    db.session.add(student)
    db.session.commit()
    return student


def update_student(student: Student, *, class_id: int | None = None, name: str | None = None, active=None) -> Student:
    """Move a student to another class of the same school, rename, or (de)activate."""
    if class_id is not None:
        klass = db.session.get(SchoolClass, class_id)
        if klass is None or klass.school_id != student.school_id:
            raise field_error("class_id", "班级不存在或不属于该学校。")
        student.class_id, student.grade = klass.id, klass.grade
    if name is not None:
        student.name = name
    if active is not None:
        student.active = active
    db.session.commit()
    return student


def issue_guardian_invite(*, student: Student, actor: User) -> GuardianInvite:
    """A one-time code, valid 14 days, that links one parent account to this student."""
    code = "".join(secrets.choice(INVITE_ALPHABET) for _ in range(10))
    invite = GuardianInvite(
        code=code, student_id=student.id, created_by=actor.id, expires_at=utcnow() + timedelta(days=INVITE_DAYS)
    )
    db.session.add(invite)
    db.session.commit()
    return invite


def _valid_invite(code: str) -> GuardianInvite:
    """The unused, unexpired invite with this code, locked for this transaction; 422 otherwise.

    Checked before anything is written, so a refused code leaves no half-made account behind.
    """
    invite = db.session.scalar(
        select(GuardianInvite).where(GuardianInvite.code == code.strip().upper()).with_for_update()
    )
    if invite is None or invite.used_at is not None or invite.expires_at < utcnow():
        raise APIError(422, "invite_invalid", "邀请码无效、已使用或已过期，请向学校索取新的邀请码。")
    return invite


def _redeem(invite: GuardianInvite, guardian: User) -> Student:
    """Use a valid invite for `guardian` (within the caller's transaction)."""
    invite.used_at, invite.used_by = utcnow(), guardian.id
    if db.session.get(GuardianLink, (guardian.id, invite.student_id)) is None:
        db.session.add(GuardianLink(guardian_id=guardian.id, student_id=invite.student_id))
    return db.session.get(Student, invite.student_id)


def register_guardian(*, username: str, password: str, invite_code: str, display_name: str | None = None) -> User:
    """Create a parent account and link the invited child, in one transaction."""
    if db.session.scalar(select(User.id).where(User.username == username)):
        raise field_error("username", "用户名已被使用。", 409)
    invite = _valid_invite(invite_code)
    user = User(username=username, password_hash=hash_password(password), role="guardian", display_name=display_name)
    db.session.add(user)
    db.session.flush()
    _redeem(invite, user)
    db.session.commit()
    return user


def link_child(*, guardian: User, code: str) -> Student:
    """Link one more child to an existing parent account."""
    student = _redeem(_valid_invite(code), guardian)
    db.session.commit()
    return student


def get_district(district_id: int) -> District:
    district = db.session.get(District, district_id)
    if district is None:
        raise not_found("区")
    return district
