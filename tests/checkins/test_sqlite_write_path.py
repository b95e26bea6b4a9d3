"""On SQLite a scan authenticates and reads the activity in a plain read transaction, then queues
for the write lock (BEGIN IMMEDIATE behind the writers' flock) — checked on an app of its own, on
its own database file, without the suite's one-transaction-per-test wrapper; and real threads
scanning at once all get their answer with every chain intact."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event

from app.db import utcnow
from tests import factories as f
from tests.conftest import IS_POSTGRES, TestConfig

# `committed`: outside the suite's one-transaction-per-test wrapper (this app has its own file).
pytestmark = [pytest.mark.skipif(IS_POSTGRES, reason="the SQLite write path"), pytest.mark.committed]


@pytest.fixture()
def own_app(tmp_path):
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db

    config = type("OwnFile", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'own.sqlite3'}"})
    application = create_app(config)
    with application.app_context():
        upgrade()
        db.session.remove()
    yield application
    with application.app_context():
        db.engine.dispose()


def _world(app, pupils: int):
    from app.extensions import db
    from app.venues import codes

    with app.app_context():
        venue = f.venue()
        staff = f.user("venue_staff", venues=[venue])
        activity = f.activity(venue, kind="lecture", starts_at=utcnow() - timedelta(hours=2),
                              ends_at=utcnow() + timedelta(hours=4))
        klass = f.school_class(grade=6)
        students = [f.student(klass) for _ in range(pupils)]
        db.session.commit()
        world = {"headers": f.bearer(staff), "activity": activity.id,
                 "passes": [codes.student_pass(s.id, s.pass_version) for s in students]}
        db.session.remove()
        return world


def _body(world, i, direction, minutes_ago):
    return {"student_pass": world["passes"][i], "activity_id": world["activity"], "direction": direction,
            "scanned_at": (utcnow() - timedelta(minutes=minutes_ago)).isoformat(), "nonce": str(uuid.uuid4())}


def test_a_scan_reads_first_and_then_takes_the_write_lock(own_app):
    from app.extensions import db

    world = _world(own_app, 1)
    seen = []
    with own_app.app_context():
        engine = db.engine

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement.split()[0].upper() + (" IMMEDIATE" if "IMMEDIATE" in statement else ""))

    event.listen(engine, "before_cursor_execute", record)
    try:
        answer = own_app.test_client().post("/api/v1/checkins", json=_body(world, 0, "entry", 50),
                                            headers=world["headers"])
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert answer.status_code == 201, answer.json
    # a read transaction (the caller, the activity; its COMMIT is the driver's, not a statement),
    # then the write transaction, which does every write
    assert seen[:4] == ["BEGIN", "SELECT", "SELECT", "BEGIN IMMEDIATE"], seen
    assert seen.count("BEGIN IMMEDIATE") == 1 and "INSERT" in seen[4:]


def test_threads_scanning_at_once_all_get_their_answer(own_app):
    from app.credits.ledger import verify_all
    from app.extensions import db

    pupils = 6
    world = _world(own_app, pupils)
    statuses, barrier = [], threading.Barrier(pupils)

    def pupil(i):
        client = own_app.test_client()
        barrier.wait()
        for direction, ago in (("entry", 50), ("exit", 2)):
            statuses.append(client.post("/api/v1/checkins", json=_body(world, i, direction, ago),
                                        headers=world["headers"]).status_code)

    threads = [threading.Thread(target=pupil, args=(i,)) for i in range(pupils)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses == [201] * (2 * pupils)
    with own_app.app_context():
        reports = list(verify_all())
        assert len(reports) == pupils and all(r.ok for r in reports)
        db.session.remove()


def test_the_wal_checkpoint_runs_after_the_answer_is_sent(own_app, checkpoint_calls):
    """App connections never checkpoint inside a commit (wal_autocheckpoint=0); a request whose
    commit is due for one runs it once the response has been sent, on a connection of its own."""
    from app.extensions import db

    world = _world(own_app, 4)
    from flask import has_request_context

    calls = checkpoint_calls(2, lambda connection: (has_request_context(), connection.in_transaction))
    with own_app.app_context():
        raw = db.engine.raw_connection()
        try:
            assert raw.driver_connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        finally:
            raw.close()
    client = own_app.test_client()
    for i in range(4):
        # buffered: the test client closes the response as a server does once it has sent it
        answer = client.post("/api/v1/checkins", json=_body(world, i, "entry", 30), headers=world["headers"],
                             buffered=True)
        assert answer.status_code == 201, answer.json
    # four scans, one write commit each: checkpoints after the 2nd and the 4th, each once its request
    # was over (a checkpoint inside the request's commit would see the request), outside any
    # transaction, copying back every frame the WAL held
    assert [probe for probe, _result in calls] == [(False, False), (False, False)]
    assert all(busy == 0 and frames > 0 and copied == frames for _probe, (busy, frames, copied) in calls)


def test_a_scan_keeps_one_connection_and_one_transaction(own_app):
    """The read part's transaction becomes the write transaction on the same connection
    (end_read_phase): one pool check-out and one SQLAlchemy transaction per scan, not two."""
    from sqlalchemy.orm import Session

    from app.extensions import db

    world = _world(own_app, 1)
    with own_app.app_context():
        engine = db.engine
    checkouts, transactions = [], []

    def checked_out(*_args):
        checkouts.append(1)

    def began(session, transaction):
        if transaction.parent is None:
            transactions.append(1)

    event.listen(engine, "checkout", checked_out)
    event.listen(Session, "after_transaction_create", began)
    try:
        for direction, ago in (("entry", 50), ("exit", 2)):
            answer = own_app.test_client().post("/api/v1/checkins", json=_body(world, 0, direction, ago),
                                                headers=world["headers"])
            assert answer.status_code == 201, answer.json
    finally:
        event.remove(engine, "checkout", checked_out)
        event.remove(Session, "after_transaction_create", began)
    assert len(checkouts) == 2 and len(transactions) == 2  # one each per scan


@pytest.mark.parametrize("request_", ["scan", "refused scan", "batch"])
def test_a_scan_that_cannot_get_the_write_lock_answers_503_and_stores_nothing(own_app, monkeypatch, request_):
    """Whether the queue times out turning the read part into the write (a scan), at the start of a
    write transaction (a refusal being stored) or in a batch: 503 with Retry-After, nothing stored."""
    import fcntl
    import os

    from sqlalchemy import func, select

    from app.checkins.models import Scan
    from app.db import QueuedWriterConnection
    from app.extensions import db

    world = _world(own_app, 1)
    with own_app.app_context():
        lock_path = f"{db.engine.url.database}-writelock"
        scans_before = db.session.scalar(select(func.count()).select_from(Scan))
        db.session.remove()
    body = _body(world, 0, "entry", 50)
    if request_ == "refused scan":
        body["student_pass"] = "not-a-pass"
    path, payload = ("/api/v1/checkins/batch", {"scans": [body]}) if request_ == "batch" else ("/api/v1/checkins", body)
    monkeypatch.setattr(QueuedWriterConnection, "write_lock_timeout", 0.2)
    holder = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another process writing for longer than the queue waits
    try:
        answer = own_app.test_client().post(path, json=payload, headers=world["headers"])
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5", answer.json
    with own_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Scan)) == scans_before
        db.session.remove()
    retry = own_app.test_client().post(path, json=payload, headers=world["headers"])
    assert retry.status_code == {"scan": 201, "refused scan": 422, "batch": 200}[request_], retry.json
    with own_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Scan)) == scans_before + 1  # now stored
        db.session.remove()


def test_a_get_that_writes_and_cannot_join_the_queue_gets_sqlalchemys_error(own_app, monkeypatch):
    """app.db.queue_for_write_lock (the statistics refresh's GET) times out like every other writer:
    SQLAlchemy's OperationalError, which the API answers 503."""
    import fcntl
    import os

    from sqlalchemy.exc import OperationalError

    from app.db import QueuedWriterConnection, queue_for_write_lock
    from app.extensions import db

    monkeypatch.setattr(QueuedWriterConnection, "write_lock_timeout", 0.2)
    with own_app.app_context():
        holder = os.open(f"{db.engine.url.database}-writelock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(holder, fcntl.LOCK_EX)
        try:
            with pytest.raises(OperationalError, match="write queue timeout"):
                queue_for_write_lock(db.session)
        finally:
            fcntl.flock(holder, fcntl.LOCK_UN)
            os.close(holder)
            db.session.rollback()
            db.session.remove()
