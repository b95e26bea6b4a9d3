"""Who is calling, and what they may see.

Roles gate routes (403 for a role that can never use one); scopes gate objects: an object outside
the caller's scope is answered 404 exactly like a missing one (SPEC §2), so ids cannot be probed.
"""

from __future__ import annotations

from functools import wraps

from flask import request
from sqlalchemy import bindparam, false, select, true
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from app.auth.models import StaffVenue, TeacherClass, User
from app.auth.tokens import TokenError, decode
from app.db import Prepared
from app.errors import APIError, not_found
from app.extensions import db
from app.observability import USER_ID_KEY
from app.orgs.models import GuardianLink, School, SchoolClass, Student
from app.venues.models import Activity, Venue

STAFF_OF_SCHOOL = ("teacher", "school_admin")
OFFICERS = ("district_officer", "city_officer")
_USER_KEY = "ledger.user"


def current_user() -> User:
    """The authenticated user of this request (401 when there is none).

    Cached in the request's WSGI environ, not on `g`: `g` lives as long as the app context, and a
    request made inside an outer app context (tests, scripts) reuses it, so a user cached on `g`
    would answer for the next request's caller too.
    """
    user = request.environ.get(_USER_KEY)
    if user is None:
        user = authenticate()
    return user


# Every authenticated request runs it, so it is a Prepared statement returning the plain row; the
# User is then built from it and handed to the session as a persistent, unchanged instance — what
# an ORM load gives, for a fifth of the cost (an ORM select was ~250 µs of every request).
_USER_ATTRIBUTES = [(attribute.key, attribute.columns[0]) for attribute in sa_inspect(User).column_attrs]
_USER_ROW = Prepared(select(*(column for _key, column in _USER_ATTRIBUTES)).where(User.id == bindparam("user_id")))


def load_user(user_id: int) -> User | None:
    """The user with this id as a persistent instance of the session (the one already in the
    session's identity map, when there is one)."""
    session = db.session
    user = session.identity_map.get(identity_key(User, user_id))
    if user is not None:
        return user
    row = _USER_ROW.first(session, {"user_id": user_id})
    if row is None:
        return None
    user = User(**{key: value for (key, _column), value in zip(_USER_ATTRIBUTES, row, strict=True)})
    make_transient_to_detached(user)  # loaded state, nothing pending: adding it issues no SQL
    session.add(user)
    return user


def authenticate() -> User:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise APIError(401, "unauthorized", "请先登录。")
    try:
        claims = decode(token.strip(), "access")
    except TokenError as exc:
        message = "登录已过期，请重新登录。" if str(exc) == "token_expired" else "登录凭证无效，请重新登录。"
        raise APIError(401, str(exc), message) from None
    user = load_user(int(claims["sub"]))
    if user is None or not user.active:
        raise APIError(401, "token_invalid", "登录凭证无效，请重新登录。")
    request.environ[_USER_KEY] = user
    request.environ[USER_ID_KEY] = user.id
    return user


def roles_required(*roles: str):
    """Require a logged-in user with one of `roles` (admin always passes)."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if roles and user.role not in roles and user.role != "admin":
                raise APIError(403, "forbidden", "您的账号没有权限执行此操作。")
            return view(*args, **kwargs)

        return wrapper

    return decorator


def teacher_class_ids(user: User) -> list[int]:
    return list(db.session.scalars(select(TeacherClass.class_id).where(TeacherClass.user_id == user.id)))


def staff_venue_ids(user: User) -> list[int]:
    return list(db.session.scalars(select(StaffVenue.venue_id).where(StaffVenue.user_id == user.id)))


def student_filter(user: User):
    """A SQL condition on Student selecting the students whose records `user` may read."""
    role = user.role
    if role == "admin":
        return true()
    if role == "school_admin":
        return Student.school_id == user.school_id
    if role == "teacher":
        return Student.class_id.in_(select(TeacherClass.class_id).where(TeacherClass.user_id == user.id))
    if role == "student":
        return Student.id == user.student_id
    if role == "guardian":
        return Student.id.in_(select(GuardianLink.student_id).where(GuardianLink.guardian_id == user.id))
    return false()  # venue staff and officers never read a child's record


def get_student(user: User, student_id: int) -> Student:
    """The student if `user` may read their record, else 404."""
    student = db.session.scalar(select(Student).where(Student.id == student_id, student_filter(user)))
    if student is None:
        raise not_found("学生")
    return student


def is_guardian_of(user: User, student_id: int) -> bool:
    return user.role == "guardian" and db.session.get(GuardianLink, (user.id, student_id)) is not None


def school_filter(user: User):
    """Schools `user` may see: officers by district or city, school staff their own school."""
    role = user.role
    if role in ("admin", "city_officer"):
        return true()
    if role == "district_officer":
        return School.district_id == user.district_id
    if role in STAFF_OF_SCHOOL:
        return School.id == user.school_id
    return false()


def get_school(user: User, school_id: int) -> School:
    school = db.session.scalar(select(School).where(School.id == school_id, school_filter(user)))
    if school is None:
        raise not_found("学校")
    return school


def class_filter(user: User):
    role = user.role
    if role == "admin":
        return true()
    if role == "school_admin":
        return SchoolClass.school_id == user.school_id
    if role == "teacher":
        return SchoolClass.id.in_(select(TeacherClass.class_id).where(TeacherClass.user_id == user.id))
    if role == "city_officer":
        return true()
    if role == "district_officer":
        return SchoolClass.school_id.in_(select(School.id).where(School.district_id == user.district_id))
    return false()


def get_class(user: User, class_id: int) -> SchoolClass:
    klass = db.session.scalar(select(SchoolClass).where(SchoolClass.id == class_id, class_filter(user)))
    if klass is None:
        raise not_found("班级")
    return klass


def managed_venue_filter(user: User):
    """Venues `user` may change: their own as venue staff; all as city officer or admin."""
    if user.role in ("admin", "city_officer"):
        return true()
    if user.role == "venue_staff":
        return Venue.id.in_(select(StaffVenue.venue_id).where(StaffVenue.user_id == user.id))
    return false()


def get_managed_venue(user: User, venue_id: int) -> Venue:
    venue = db.session.scalar(select(Venue).where(Venue.id == venue_id, managed_venue_filter(user)))
    if venue is None:
        raise not_found("场馆")
    return venue


def get_managed_activity(user: User, activity_id: int) -> Activity:
    activity = db.session.scalar(
        select(Activity).join(Venue).where(Activity.id == activity_id, managed_venue_filter(user))
    )
    if activity is None:
        raise not_found("科普活动")
    return activity
