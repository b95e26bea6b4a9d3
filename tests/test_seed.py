"""The demo city (`flask seed-demo`): what it builds, that a second run adds nothing, that its history
is real ledger history (hash chains intact, caps and 未签退 included), and that every printed login works.

Seeding runs a few thousand scans through the pipeline, so the city is built once, in one test, and
checked from every side there; the small pieces (calendar, programme, names) are tested on their own.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, time, timedelta

from flask import current_app
from sqlalchemy import func, select

from app.auth.models import ROLES, StaffVenue, TeacherClass, User
from app.checkins.models import Checkin, Scan
from app.credits.ledger import verify_all
from app.credits.models import LedgerEntry
from app.credits.rules import SHANGHAI, local_date
from app.matching.models import Booking
from app.orgs.models import District, GuardianLink, School, SchoolClass, Student
from app.seed import (
    DEMO_PASSWORD,
    RANDOM_SEED,
    THEMES,
    _pupils,
    current_days,
    history_days,
    program,
    seed_demo,
)
from app.transcripts.service import transcript
from app.venues.models import Activity, Venue

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI)
MAIN_ACCOUNTS = {
    "admin": "admin", "city": "city_officer", "futian": "district_officer", "school_admin": "school_admin",
    "teacher": "teacher", "venue": "venue_staff", "parent": "guardian", "student": "student",
}
MODELS = (District, School, SchoolClass, Student, User, TeacherClass, StaffVenue, GuardianLink, Venue, Activity,
          Checkin, Scan, LedgerEntry, Booking)


def _table_counts(session) -> dict[str, int]:
    return {m.__tablename__: session.scalar(select(func.count()).select_from(m)) for m in MODELS}


def _user(session, username: str) -> User:
    return session.scalar(select(User).where(User.username == username))


def test_seed_demo_builds_the_demo_city_once_with_real_history(ctx, db_session, client):
    first_output: list[str] = []
    counts = seed_demo(first_output.append, now=NOW)

    # --- the city ----------------------------------------------------------------------------
    districts = db_session.scalars(select(District)).all()
    assert sorted(d.name for d in districts) == ["南山区", "福田区"]
    schools = db_session.scalars(select(School)).all()
    assert len(schools) == 3
    pilots = Counter(s.district_id for s in schools if s.pilot)
    assert sorted(pilots.values()) == [1, 1] and set(pilots) == {d.id for d in districts}
    classes = db_session.scalars(select(SchoolClass)).all()
    assert {c.grade for c in classes} == {3, 5, 8}
    for klass in classes:
        size = db_session.scalar(select(func.count()).where(Student.class_id == klass.id))
        assert 25 <= size <= 35, (klass.name, size)
        assert klass.name.endswith("年级(1)班")
    numbers = db_session.execute(select(Student.school_id, Student.student_number)).all()
    assert len(numbers) == len(set(numbers))
    assert all(len(name) in (2, 3) for name in db_session.scalars(select(Student.name)))

    venues = db_session.scalars(select(Venue)).all()
    assert len(venues) == 4 and len({v.kind for v in venues}) == 4
    assert all(22.4 < v.latitude < 22.9 and 113.7 < v.longitude < 114.4 for v in venues)  # in Shenzhen

    # --- the week of activities around "today", and its programme ------------------------------
    activities = db_session.scalars(select(Activity)).all()
    week = [a for a in activities if local_date(a.starts_at) >= local_date(NOW) - timedelta(days=3)]
    assert {local_date(a.starts_at) for a in week} == set(current_days(local_date(NOW)))
    assert {a.kind for a in week} == {"visit", "lecture", "workshop", "research", "volunteer"}
    assert {a.theme for a in activities} <= set(THEMES)
    assert any(a.capacity for a in week) and any(a.capacity is None for a in week)
    assert any(a.grades != list(range(1, 10)) for a in week)
    for a in activities:
        start, end = a.starts_at.astimezone(SHANGHAI), a.ends_at.astimezone(SHANGHAI)
        assert start.date() == end.date() and time(9) <= start.time() < end.time() <= time(17)

    # --- one account per role, with its scope -----------------------------------------------
    for username, role in MAIN_ACCOUNTS.items():
        assert _user(db_session, username).role == role
    assert set(db_session.scalars(select(User.role))) == set(ROLES)
    first_school = db_session.scalar(select(School).order_by(School.id))
    assert _user(db_session, "futian").district_id == next(d.id for d in districts if d.name == "福田区")
    assert _user(db_session, "school_admin").school_id == first_school.id
    teacher_classes = set(db_session.scalars(select(TeacherClass.class_id).where(
        TeacherClass.user_id == _user(db_session, "teacher").id)))
    assert len(teacher_classes) == 2
    assert {db_session.get(SchoolClass, c).school_id for c in teacher_classes} == {first_school.id}
    assert db_session.scalar(select(func.count()).where(StaffVenue.user_id == _user(db_session, "venue").id)) == 2
    children = [db_session.get(Student, s) for s in db_session.scalars(
        select(GuardianLink.student_id).where(GuardianLink.guardian_id == _user(db_session, "parent").id))]
    assert len(children) == 2
    assert children[0].name[0] == children[1].name[0]  # siblings share a surname
    assert {c.class_id for c in children} <= teacher_classes
    pupil = db_session.get(Student, _user(db_session, "student").student_id)
    assert pupil.class_id in teacher_classes and pupil in children

    # --- bookings: the teacher's class trip and the parent's seat, ahead, on the pupils' side --
    bookings = db_session.scalars(select(Booking).order_by(Booking.id)).all()
    assert [(b.kind, b.status) for b in bookings] == [("class", "confirmed"), ("guardian", "confirmed")]
    trip, seat = bookings
    assert trip.class_id in teacher_classes and trip.activity.kind == "lecture"
    assert trip.seats == db_session.scalar(select(func.count()).where(Student.class_id == trip.class_id))
    assert seat.student_id in {c.id for c in children} and seat.activity.kind == "workshop"
    assert all(b.activity.starts_at > NOW + timedelta(days=1) for b in bookings)
    assert counts["bookings"] == 2

    # --- the history is real ledger history -------------------------------------------------
    completed = db_session.scalar(select(func.count()).where(Checkin.status == "completed"))
    entries = db_session.scalars(select(LedgerEntry)).all()
    assert completed > 500 and len(entries) == completed  # one credit entry per completed stay
    assert {e.school_year for e in entries} == {"2026-2027"}
    assert all(e.rule_version == "sz-2025" and e.explanation["summary"] for e in entries)
    assert all(e.occurred_at < NOW - timedelta(days=3) for e in entries)
    reasons = Counter(e.explanation.get("reason") for e in entries)
    assert reasons["below_min_minutes"] > 0 and reasons["venue_cap"] > 0  # 0.00, and it says why
    assert db_session.scalar(select(func.count()).where(Checkin.status == "no_exit")) > 0  # 未签退
    assert db_session.scalar(select(func.count()).where(Checkin.source == "group")) > 0  # a class trip
    assert db_session.scalar(select(func.count()).where(Scan.reason == "not_eligible")) > 0  # refusals stored
    daily = Counter()
    for e in entries:
        daily[(e.student_id, local_date(e.occurred_at))] += e.amount
    assert max(daily.values()) <= 4
    reports = list(verify_all())
    assert len(reports) > 100 and all(r.ok for r in reports)

    met = [transcript(s, "2026-2027")["met"] for s in db_session.scalars(select(Student))]
    assert 0.15 * len(met) < sum(met) < 0.7 * len(met)
    assert counts["students_meeting_requirement"] == sum(met)
    assert counts["ledger_entries"] == len(entries) and counts["students"] == len(met)

    # --- a second run creates nothing ---------------------------------------------------------
    before = _table_counts(db_session)
    second_output: list[str] = []
    assert seed_demo(second_output.append, now=NOW) == counts
    assert _table_counts(db_session) == before
    assert "nothing new" in second_output[1] and " 0 accepted" in second_output[2]
    assert all(r.ok for r in verify_all())

    # --- what it prints, and every printed login works -------------------------------------------
    printed = "\n".join(first_output)
    assert DEMO_PASSWORD in printed and f"{current_app.config['PUBLIC_BASE_URL']}/api/docs" in printed
    assert f"{counts['students_meeting_requirement']} / {counts['students']}" in printed
    for username, role in MAIN_ACCOUNTS.items():
        assert f" {username} " in printed
        answer = client.post("/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD})
        assert answer.status_code == 200, (username, answer.json)
        assert answer.json["user"]["role"] == role and answer.json["access_token"]

    # --- a run on a later day books nothing new while the first bookings are ahead -------------
    seed_demo([].append, now=NOW + timedelta(hours=20))
    assert db_session.scalar(select(func.count()).select_from(Booking)) == 2


def test_history_is_five_weeks_before_the_week_and_stays_in_the_school_year():
    days = history_days(date(2026, 11, 22))
    assert days[0] == date(2026, 10, 15) and days[-1] == date(2026, 11, 18) and len(days) == 35
    assert history_days(date(2026, 9, 10)) == [date(2026, 9, d) for d in range(1, 7)]
    assert current_days(date(2026, 11, 22)) == [date(2026, 11, 19) + timedelta(days=n) for n in range(11)]


def test_programme_closes_museums_on_mondays_and_keeps_opening_hours():
    monday, saturday = date(2026, 11, 23), date(2026, 11, 21)
    assert program("sci", monday) == [] and program("nature", monday) == [] and program("dji", monday) == []
    assert [s.kind for s in program("maker", monday)] == ["workshop"]
    kinds = {s.kind for key in ("sci", "nature", "dji", "maker") for s in program(key, saturday)}
    assert kinds == {"visit", "lecture", "workshop", "research", "volunteer"}
    for key in ("sci", "nature", "dji", "maker"):
        for n in range(7):
            for slot in program(key, saturday + timedelta(days=n)):
                assert time(9) <= slot.start < slot.end <= time(17)


def test_pupils_are_the_same_every_time_with_unique_numbers_per_school():
    first, second = _pupils(random.Random(RANDOM_SEED)), _pupils(random.Random(RANDOM_SEED))
    assert [(p.school, p.number, p.name, p.profile) for p in first] == [
        (p.school, p.number, p.name, p.profile) for p in second
    ]
    keys = [(p.school, p.number) for p in first]
    assert len(keys) == len(set(keys))
    assert Counter(p.profile for p in first).keys() == {"met", "partial", "none"}
