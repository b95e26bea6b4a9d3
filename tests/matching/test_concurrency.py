"""Real threads against PostgreSQL: seats are never oversold, whoever races — guardians for the last
seats, cancellations against new bookings, bookings against walk-ins at the door.

Each thread has its own app context, session and connection, like gunicorn workers; the data is
committed and wiped afterwards (the `committed` fixture skips these tests on SQLite).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select

from app.auth.models import User
from app.checkins import service as scans
from app.checkins.models import Checkin
from app.db import utcnow
from app.extensions import db
from app.matching import bookings
from app.matching.models import Booking, BookingAttendance
from app.orgs.models import Student
from app.venues import codes
from app.venues.models import Activity
from tests import factories as f
from tests.threads import run_threads

THREADS = 50


def _families(n, grade=5):
    out = []
    for _ in range(n):
        child = f.student(f.school_class(grade=grade))
        out.append((f.user("guardian", children=[child]).id, child.id))
    return out


def _book(guardian_id, student_id, activity_id):
    booking = bookings.book_student(actor=db.session.get(User, guardian_id), activity=db.session.get(Activity, activity_id),
                                    student=db.session.get(Student, student_id))
    return booking.id, booking.status


def _cancel(guardian_id, booking_id):
    user = db.session.get(User, guardian_id)
    _, promoted = bookings.cancel(actor=user, booking=bookings.get_booking(user, booking_id))
    return [b.id for b in promoted]


def _staff_entry(staff_id, student_id, activity_id):
    staff, pupil = db.session.get(User, staff_id), db.session.get(Student, student_id)
    token = codes.student_pass(pupil.id, pupil.pass_version)
    body = {"student_pass": token, "activity_id": activity_id, "direction": "entry", "nonce": str(uuid.uuid4())}
    req = scans.ScanRequest(actor=staff, source="staff", student_pass=token, activity_id=activity_id,
                            direction="entry", nonce=body["nonce"], body=body)
    result = scans.scan(req)
    return result.status, (result.body.get("error") or {}).get("code")


def _live(activity_id):
    return db.session.execute(
        select(Booking.id, Booking.status).where(Booking.activity_id == activity_id).order_by(Booking.id)
    ).all()


def test_fifty_guardians_race_for_the_last_ten_seats(app, committed):
    with app.app_context():
        start = utcnow() + timedelta(days=2)
        act = f.activity(kind="workshop", capacity=12, starts_at=start, ends_at=start + timedelta(hours=2))
        early = _families(2)
        for guardian, child in early:
            assert _book(guardian, child, act.id)[1] == "confirmed"
        racers = _families(THREADS)
        activity_id = act.id
        db.session.remove()

    results = run_threads(app, lambda i: _book(*racers[i], activity_id), THREADS)
    statuses = [status for _, status in results]
    assert statuses.count("confirmed") == 10 and statuses.count("waitlisted") == 40

    with app.app_context():
        seats = db.session.scalar(select(func.sum(Booking.seats)).where(Booking.activity_id == activity_id,
                                                                         Booking.status == "confirmed"))
        assert seats == 12
        confirmed = [i for i, s in _live(activity_id) if s == "confirmed"]
        waiting = [i for i, s in _live(activity_id) if s == "waitlisted"]
        # in order: every seat went to a booking that got the lock before every waiting one
        assert max(confirmed) < min(waiting)
        positions = bookings.waitlist_positions([activity_id])
        assert [positions[i] for i in waiting] == list(range(1, 41))
        # one booking per child, whatever the race
        assert db.session.scalar(select(func.count(func.distinct(Booking.student_id)))
                                 .where(Booking.activity_id == activity_id)) == 52
        owner = {bid: racers[n][0] for n, (bid, _) in enumerate(results)}
        cancelling = [bid for bid in confirmed if bid in owner][:5]
        late = _families(10)
        db.session.remove()

    # five cancellations race ten new bookings: the five freed seats go to the head of the list
    work = [("cancel", owner[bid], bid) for bid in cancelling] + [("book", g, c) for g, c in late]
    run_threads(app, lambda i: _cancel(work[i][1], work[i][2]) if work[i][0] == "cancel"
                 else _book(work[i][1], work[i][2], activity_id), len(work))
    with app.app_context():
        now = dict(_live(activity_id))
        assert sum(1 for s in now.values() if s == "confirmed") == 12
        assert [now[i] for i in waiting[:5]] == ["confirmed"] * 5
        assert [now[i] for i in waiting[5:]] == ["waitlisted"] * 35
        newest = sorted(i for i in now if i not in set(confirmed) | set(waiting))
        assert len(newest) == 10 and all(now[i] == "waitlisted" for i in newest)
        positions = bookings.waitlist_positions([activity_id])
        assert [positions[i] for i in waiting[5:] + newest] == list(range(1, 46))


def test_bookings_and_walk_ins_never_oversell_together(app, committed):
    with app.app_context():
        museum = f.venue()
        staff_id = f.user("venue_staff", venues=[museum]).id
        act = f.activity(museum, kind="visit", capacity=10, starts_at=utcnow() - timedelta(hours=1),
                         ends_at=utcnow() + timedelta(hours=5))
        families = _families(25)
        walkers = [f.student(f.school_class(grade=5)).id for _ in range(25)]
        activity_id = act.id
        db.session.remove()

    def work(i):
        if i % 2:
            return "booking", _book(*families[i // 2], activity_id)[1], None
        return ("scan",) + _staff_entry(staff_id, walkers[i // 2], activity_id)

    results = run_threads(app, work, THREADS)
    booked = sum(1 for kind, status, _ in results if kind == "booking" and status == "confirmed")
    walked = sum(1 for kind, status, _ in results if kind == "scan" and status == 201)
    assert booked + walked == 10, results
    assert all(code == "activity_full" for kind, status, code in results if kind == "scan" and status != 201)
    with app.app_context():
        seated = db.session.scalar(select(func.count(func.distinct(Checkin.student_id)))
                                   .where(Checkin.activity_id == activity_id, Checkin.status == "open"))
        seats = db.session.scalar(select(func.coalesce(func.sum(Booking.seats), 0))
                                  .where(Booking.activity_id == activity_id, Booking.status == "confirmed"))
        assert seated + seats == 10


def test_booked_pupils_always_get_in_while_walk_ins_race(app, committed):
    with app.app_context():
        museum = f.venue()
        staff_id = f.user("venue_staff", venues=[museum]).id
        act = f.activity(museum, kind="visit", capacity=10, starts_at=utcnow() + timedelta(hours=1),
                         ends_at=utcnow() + timedelta(hours=6))
        klass = f.school_class(grade=5)
        classmates = [f.student(klass).id for _ in range(8)]
        teacher = f.user("teacher", classes=[klass])
        bookings.book_class(actor=teacher, activity=act, klass=klass, seats=6)  # 6 of 8 pupils booked
        walkers = [f.student(f.school_class(grade=5)).id for _ in range(22)]
        act.starts_at = utcnow() - timedelta(minutes=10)  # the session opens
        db.session.commit()
        activity_id = act.id
        db.session.remove()

    pupils = classmates + walkers  # 30 pupils at the door at once, 10 seats, 6 of them booked
    results = run_threads(app, lambda i: _staff_entry(staff_id, pupils[i], activity_id), len(pupils))
    accepted = [pupils[i] for i, (status, _) in enumerate(results) if status == 201]
    assert len(accepted) == 10
    with app.app_context():
        linked = db.session.scalar(select(func.count(BookingAttendance.id))
                                   .where(BookingAttendance.activity_id == activity_id))
        assert linked == 6  # six classmates came in on the class booking, whoever was first at the door
        walked_in = [p for p in accepted if p in walkers or p not in set(db.session.scalars(
            select(BookingAttendance.student_id).where(BookingAttendance.activity_id == activity_id)))]
        assert len(walked_in) == 4
