"""Real threads against PostgreSQL: duplicate exits, duplicate nonces, parallel chains.

Each thread has its own app context, session and database connection, exactly like gunicorn
workers; the data is committed and wiped afterwards (the `committed` fixture).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select

from app.checkins import service
from app.checkins.models import Checkin, Scan
from app.credits.ledger import verify_all
from app.credits.models import LedgerEntry
from app.db import utcnow
from app.extensions import db
from app.venues import codes
from tests import factories as f
from tests.threads import run_threads

THREADS = 50


def _setup(app, pupils=1):
    with app.app_context():
        klass = f.school_class(grade=5)
        students = [f.student(klass) for _ in range(pupils)]
        accounts = [f.student_user(s) for s in students]
        act = f.activity(kind="visit", starts_at=utcnow() - timedelta(hours=2), ends_at=utcnow() + timedelta(hours=6))
        db.session.commit()
        return [a.id for a in accounts], [s.id for s in students], act.id


def _self_scan(account_id, activity_id, direction, nonce=None, at=None):
    from app.auth.models import User

    account = db.session.get(User, account_id)
    token = codes.venue_code(activity_id, direction, at or utcnow()).token
    body = {"code": token, "nonce": nonce or str(uuid.uuid4())}
    req = service.ScanRequest(actor=account, source="self", code=token, nonce=body["nonce"], body=body)
    return service.scan(req, now=at)


def test_fifty_exit_scans_complete_one_stay_with_one_credit(app, committed):
    (account,), (student,), activity = _setup(app)
    with app.app_context():
        assert _self_scan(account, activity, "entry", at=utcnow() - timedelta(minutes=45)).status == 201
        db.session.remove()
    statuses = run_threads(app, lambda i: _self_scan(account, activity, "exit").status, THREADS)
    assert statuses.count(201) == 1
    assert statuses.count(422) == THREADS - 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Checkin).where(Checkin.status == "completed")) == 1
        entries = db.session.scalars(select(LedgerEntry).where(LedgerEntry.student_id == student)).all()
        assert len(entries) == 1 and str(entries[0].amount) == "0.50"
        refused = db.session.scalar(select(func.count()).select_from(Scan).where(Scan.reason == "not_checked_in"))
        assert refused == THREADS - 1
        assert all(r.ok for r in verify_all())


def test_fifty_threads_same_nonce_make_one_scan(app, committed):
    (account,), (student,), activity = _setup(app)
    nonce = str(uuid.uuid4())
    at = utcnow()
    results = run_threads(app, lambda i: _self_scan(account, activity, "entry", nonce=nonce, at=at), THREADS)
    assert sorted(r.status for r in results) == [200] * (THREADS - 1) + [201]
    assert all(r.body["checkin"]["id"] == results[0].body["checkin"]["id"] for r in results)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Scan).where(Scan.nonce == nonce)) == 1
        assert db.session.scalar(select(func.count()).select_from(Checkin)) == 1


def test_parallel_students_never_fork_a_chain(app, committed):
    accounts, students, activity = _setup(app, pupils=10)
    start = utcnow() - timedelta(minutes=95)
    with app.app_context():
        for account in accounts:
            assert _self_scan(account, activity, "entry", at=start).status == 201
        db.session.remove()
    # two exits per pupil race each other, and ten pupils race each other
    results = run_threads(app, lambda i: _self_scan(accounts[i % 10], activity, "exit").status, count=20)
    assert results.count(201) == 10
    with app.app_context():
        reports = list(verify_all())
        assert len(reports) == 10 and all(r.ok and r.entries == 1 for r in reports)
        seqs = db.session.execute(select(LedgerEntry.student_id, LedgerEntry.seq)).all()
        assert len(set(seqs)) == len(seqs) == 10


def test_a_scan_that_waited_for_the_pupil_sees_a_term_closed_meanwhile(app, committed):
    """A scan queued behind another transaction on the pupil's lock must see what committed while
    it waited (SELECT … FOR UPDATE sees only the locked row fresh, so the term is read after it)."""
    import threading
    import time

    from sqlalchemy import text

    from app.credits.rules import local_date, school_year_of, term_of
    from app.reviews.models import TermClosure

    (account,), (student,), activity = _setup(app)
    now = utcnow()
    holder_ready, release = threading.Event(), threading.Event()
    answer = {}

    def hold_the_pupil():
        with app.app_context():
            db.session.execute(text("SELECT id FROM students WHERE id = :id FOR UPDATE"), {"id": student})
            holder_ready.set()
            release.wait(10)
            db.session.commit()
            db.session.remove()

    def scan_behind_it():
        with app.app_context():
            answer["result"] = _self_scan(account, activity, "entry", at=now)
            db.session.remove()

    holder = threading.Thread(target=hold_the_pupil)
    holder.start()
    assert holder_ready.wait(10)
    scanner = threading.Thread(target=scan_behind_it)
    scanner.start()
    time.sleep(0.5)  # the scan is now waiting for the pupil's lock
    with app.app_context():
        from app.orgs.models import Student

        day = local_date(now)
        school_id = db.session.get(Student, student).school_id
        db.session.add(TermClosure(school_id=school_id, school_year=school_year_of(day), term=term_of(day),
                                   closed_by=account))
        db.session.commit()
        db.session.remove()
    release.set()
    holder.join(10)
    scanner.join(10)
    result = answer["result"]
    assert result.status == 422 and result.body["error"]["code"] == "term_closed", result.body
