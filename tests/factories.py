"""Factories: build the organisations, people, venues and activities a test needs, in a few calls.

Each function adds and commits, as data made before a request would be. In ordinary tests the
commit only releases a savepoint (the test's outer transaction is rolled back at the end), so a
request that rolls back its own work leaves the test's data in place.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from app.auth.models import StaffVenue, TeacherClass, User
from app.auth.passwords import hash_password
from app.auth.tokens import issue_tokens
from app.extensions import db
from app.orgs.models import District, GuardianLink, School, SchoolClass, Student
from app.venues.models import Activity, Venue

_n = itertools.count(1)
PASSWORD = "correct-horse-1"


def _add(obj):
    db.session.add(obj)
    db.session.commit()
    return obj


def district(name="福田区", code=None):
    return _add(District(name=name, code=code or f"D{next(_n)}"))


def school(district_=None, name=None, pilot=False, latitude=None, longitude=None):
    district_ = district_ or district()
    return _add(School(name=name or f"实验学校{next(_n)}", district_id=district_.id, pilot=pilot,
                       latitude=latitude, longitude=longitude))


def school_class(school_=None, grade=5, name=None):
    school_ = school_ or school()
    return _add(SchoolClass(school_id=school_.id, grade=grade, name=name or f"{grade}年级({next(_n)})班"))


def student(klass=None, name=None, number=None, active=True):
    klass = klass or school_class()
    return _add(Student(school_id=klass.school_id, class_id=klass.id, grade=klass.grade,
                        student_number=number or f"S{next(_n):06d}", name=name or f"学生{next(_n)}",
                        active=active, pass_version=1))


def user(role, *, username=None, student_=None, school_=None, district_=None, classes=(), venues=(),
         children=()):
    account = _add(User(
        username=username or f"{role}{next(_n)}",
        password_hash=hash_password(PASSWORD),
        role=role,
        display_name=f"{role} 用户",
        student_id=student_.id if student_ else None,
        school_id=(school_.id if school_ else (student_.school_id if student_ else None)),
        district_id=district_.id if district_ else None,
    ))
    for klass in classes:
        _add(TeacherClass(user_id=account.id, class_id=klass.id))
    for venue_ in venues:
        _add(StaffVenue(user_id=account.id, venue_id=venue_.id))
    for child in children:
        _add(GuardianLink(guardian_id=account.id, student_id=child.id))
    return account


def student_user(student_=None):
    student_ = student_ or student()
    return user("student", student_=student_)


def venue(district_=None, kind="science_museum", level="city", name=None, latitude=None, longitude=None,
          active=True):
    district_ = district_ or district()
    return _add(Venue(name=name or f"科技馆{next(_n)}", kind=kind, level=level, district_id=district_.id,
                      latitude=latitude, longitude=longitude, active=active))


def activity(venue_=None, kind="visit", starts_at=None, ends_at=None, min_minutes=None, capacity=None,
             grades=None, title=None, theme="航天"):
    from app.credits.rules import activity_min_minutes
    from app.credits.service import active_rules

    venue_ = venue_ or venue()
    starts_at = starts_at or datetime.now(UTC) - timedelta(hours=1)
    ends_at = ends_at or starts_at + timedelta(hours=8)
    return _add(Activity(
        venue_id=venue_.id, kind=kind, title=title or f"{kind} 活动 {next(_n)}", theme=theme,
        starts_at=starts_at, ends_at=ends_at,
        min_minutes=min_minutes or activity_min_minutes(active_rules(), kind),
        capacity=capacity, grades=grades or list(range(1, 10)),
    ))


def bearer(account) -> dict:
    """Authorization headers for an account (tokens issued directly, no login round trip)."""
    return {"Authorization": f"Bearer {issue_tokens(account)['access_token']}"}
