"""Accounts: login, refresh, creation with their scope links, guardian registration."""

from __future__ import annotations

from sqlalchemy import select

from app.auth.models import StaffVenue, TeacherClass, User
from app.auth.passwords import hash_password, verify_password
from app.auth.tokens import TokenError, decode, issue_tokens
from app.errors import APIError, field_error
from app.extensions import db
from app.orgs.models import District, GuardianLink, School, SchoolClass, Student
from app.venues.models import Venue


def login(*, username: str, password: str) -> dict:
    """Tokens for a correct username and password; 401 otherwise (same answer for both)."""
    user = db.session.scalar(select(User).where(User.username == username))
    if not verify_password(user.password_hash if user else None, password) or not user.active:
        raise APIError(401, "invalid_credentials", "用户名或密码错误。")
    return {**issue_tokens(user), "user": user_view(user)}


def refresh(*, refresh_token: str) -> dict:
    """A new token pair for a valid refresh token of a still-active user."""
    try:
        claims = decode(refresh_token, "refresh")
    except TokenError as exc:
        raise APIError(401, str(exc), "登录已过期，请重新登录。") from None
    user = db.session.get(User, int(claims["sub"]))
    if user is None or not user.active or claims.get("gen") != user.token_generation:
        raise APIError(401, "token_invalid", "登录已失效，请重新登录。")
    return {**issue_tokens(user), "user": user_view(user)}


def user_view(user: User) -> dict:
    """The user as the API shows it, with the ids that define its scope."""
    view = {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "display_name": user.display_name,
        "active": user.active,
        "student_id": user.student_id,
        "school_id": user.school_id,
        "district_id": user.district_id,
    }
    if user.role == "teacher":
        view["class_ids"] = list(
            db.session.scalars(select(TeacherClass.class_id).where(TeacherClass.user_id == user.id))
        )
    if user.role == "venue_staff":
        view["venue_ids"] = list(
            db.session.scalars(select(StaffVenue.venue_id).where(StaffVenue.user_id == user.id))
        )
    if user.role == "guardian":
        view["children"] = list(
            db.session.scalars(select(GuardianLink.student_id).where(GuardianLink.guardian_id == user.id))
        )
    return view


def _require(condition, field: str, message: str) -> None:
    if not condition:
        raise field_error(field, message)


def create_user(
    *,
    actor: User,
    username: str,
    password: str,
    role: str,
    display_name: str | None = None,
    student_id: int | None = None,
    school_id: int | None = None,
    district_id: int | None = None,
    class_ids: list[int] = (),
    venue_ids: list[int] = (),
) -> User:
    """Create an account with the scope its role needs; a school admin creates its school's only."""
    if actor.role == "school_admin":
        _require(role in ("student", "teacher", "school_admin"), "role", "学校管理员只能创建本校的学生、教师和管理员账号。")
        school_id = actor.school_id
        if role == "student" and student_id is not None:
            student = db.session.get(Student, student_id)
            _require(student is not None and student.school_id == actor.school_id, "student_id", "学生不存在。")
    if db.session.scalar(select(User.id).where(User.username == username)) is not None:
        raise field_error("username", "用户名已被使用。", 409)  # a conflict, as in register_guardian
    if role == "student":
        student = db.session.get(Student, student_id) if student_id else None
        _require(student is not None, "student_id", "学生账号必须关联一名学生。")
        if db.session.scalar(select(User.id).where(User.student_id == student_id)) is not None:
            raise field_error("student_id", "该学生已有账号。", 409)
        school_id = student.school_id
    if role in ("teacher", "school_admin"):
        _require(school_id is not None and db.session.get(School, school_id), "school_id", "必须指定存在的学校。")
    if role == "district_officer":
        _require(district_id is not None and db.session.get(District, district_id), "district_id", "必须指定存在的区。")
    # Every link is checked before the account is written: a refusal leaves nothing behind.
    class_ids = sorted(set(class_ids)) if role == "teacher" else []
    for class_id in class_ids:
        klass = db.session.get(SchoolClass, class_id)
        _require(klass is not None and klass.school_id == school_id, "class_ids", f"班级 {class_id} 不属于该学校。")
    venue_ids = sorted(set(venue_ids)) if role == "venue_staff" else []
    for venue_id in venue_ids:
        _require(db.session.get(Venue, venue_id) is not None, "venue_ids", f"场馆 {venue_id} 不存在。")
    user = User(
        username=username,
        password_hash=hash_password(password),
        role=role,
        display_name=display_name,
        student_id=student_id if role == "student" else None,
        school_id=school_id if role in ("student", "teacher", "school_admin") else None,
        district_id=district_id if role == "district_officer" else None,
    )
    db.session.add(user)
    db.session.flush()
    db.session.add_all(TeacherClass(user_id=user.id, class_id=class_id) for class_id in class_ids)
    db.session.add_all(StaffVenue(user_id=user.id, venue_id=venue_id) for venue_id in venue_ids)
    db.session.commit()
    return user
