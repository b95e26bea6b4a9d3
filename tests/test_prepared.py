"""app.db.Prepared, the scan path's statements on the session's DBAPI connection: every one of them
answers exactly what Session.execute answers for the same statement (types included, on SQLite and
PostgreSQL), errors come out as SQLAlchemy's, listeners still see each statement, and statements it
cannot run faithfully are refused when first run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, event, insert, select
from sqlalchemy.exc import IntegrityError, InvalidRequestError, StatementError

from app.checkins import service
from app.checkins.models import Checkin, Scan
from app.credits import ledger
from app.credits import service as credits
from app.credits.models import LedgerEntry
from app.credits.rules import local_day_bounds, school_year_of, term_of
from app.db import Prepared
from app.extensions import db
from tests import factories as f
from tests.checkins.test_service import staff_scan

T0 = datetime(2026, 11, 17, 2, 0, tzinfo=UTC)  # a Tuesday of term 1 of 2026-2027


@pytest.fixture
def world(ctx):
    """A pupil with two completed, credited stays (a chain of two entries) and one open stay,
    scanned by venue staff."""
    klass = f.school_class(grade=5)
    pupil = f.student(klass)
    venue = f.venue(kind="science_museum", level="city")
    morning = f.activity(venue, kind="visit", starts_at=T0 - timedelta(hours=1), ends_at=T0 + timedelta(hours=3))
    noon = f.activity(venue, kind="workshop", starts_at=T0 + timedelta(hours=1), ends_at=T0 + timedelta(hours=3))
    later = f.activity(venue, kind="lecture", starts_at=T0 + timedelta(hours=3), ends_at=T0 + timedelta(hours=6))
    staff = f.user("venue_staff", venues=[venue])
    guardian = f.user("guardian", children=[pupil])
    for activity, direction, at in ((morning, "entry", T0), (morning, "exit", T0 + timedelta(minutes=75)),
                                    (noon, "entry", T0 + timedelta(minutes=80)),
                                    (noon, "exit", T0 + timedelta(minutes=170)),
                                    (later, "entry", T0 + timedelta(hours=3, minutes=5))):
        result = staff_scan(staff, pupil, activity, direction, at=at)
        assert result.status == 201, result.body
    return {"pupil": pupil, "venue": venue, "morning": morning, "later": later, "staff": staff,
            "guardian": guardian, "klass": klass}


def _cases(world):
    pupil, staff, venue = world["pupil"], world["staff"], world["venue"]
    nonce = db.session.scalar(select(Scan.nonce).where(Scan.actor_id == staff.id).limit(1))
    day = T0.astimezone(UTC)
    day_start, day_end = local_day_bounds(day)
    local = day.date()
    facts = {"student_id": pupil.id, "school_year": school_year_of(local), "term": term_of(local)}
    return [
        (service._REPLAY, {"actor_id": staff.id, "nonce": nonce}),
        (service._ACTIVITY, {"activity_id": world["morning"].id}),
        (service._STAFF_ACTIVITY, {"activity_id": world["later"].id, "user_id": staff.id}),
        (service._STAFF_ACTIVITY, {"activity_id": world["later"].id, "user_id": world["guardian"].id}),
        (service._LOCK_STUDENT, {"student_id": pupil.id}),
        (service._STUDENT_FACTS, {**facts, "school_id": pupil.school_id}),
        (service._LOCK_STUDENT_AND_FACTS, facts),
        (service._IS_GUARDIAN, {"guardian_id": world["guardian"].id, "student_id": pupil.id}),
        (service._OPEN_STAYS, {"student_id": pupil.id}),
        (service._EXIT_CANDIDATE, {"student_id": pupil.id, "activity_id": world["later"].id,
                                   "when": T0 + timedelta(hours=4)}),
        (service._EXIT_CANDIDATE, {"student_id": pupil.id, "activity_id": world["morning"].id,
                                   "when": T0 + timedelta(hours=4)}),
        (credits._STAY_HISTORY, {"day_start": day_start, "day_end": day_end, "venue_id": venue.id,
                                 "student_id": pupil.id, **facts}),
        (ledger._HEAD, {"student_id": pupil.id}),
        (credits._STAY_HISTORY_AND_HEAD, {"day_start": day_start, "day_end": day_end, "venue_id": venue.id,
                                          "student_id": pupil.id, **facts}),
    ]


def test_every_scan_statement_answers_what_session_execute_answers(world):
    cases = _cases(world)
    answered = 0
    for prepared, params in cases:
        expected = [tuple(row) for row in db.session.execute(prepared.statement, params).all()]
        got = prepared.rows(db.session, params)
        assert [tuple(row) for row in got] == expected, prepared.statement
        for mine, theirs in zip(got, expected, strict=True):
            assert [type(v) for v in mine] == [type(v) for v in theirs], prepared.statement
        answered += bool(expected)
    # not vacuous: every case finds rows but two that must not (a guardian is not venue staff; the
    # morning stay is closed, so it is no exit candidate)
    assert answered == len(cases) - 2
    head = ledger._HEAD.first(db.session, {"student_id": world["pupil"].id})
    assert head.seq == 2  # the head, not the first entry
    row = service._EXIT_CANDIDATE.first(db.session, cases[9][1])
    assert row.entered_at.tzinfo is UTC and isinstance(row.flags, list)  # UTCDateTime and JSON processed
    assert row._asdict()["id"] == row.id
    history = credits._STAY_HISTORY.first(db.session, cases[11][1])
    assert str(history[0]) == str(db.session.execute(credits._STAY_HISTORY.statement, cases[11][1]).first()[0])
    assert history[0] > 0  # Money: cents back to a Decimal


def _row(table, row_id):
    return dict(db.session.execute(select(table).where(table.c.id == row_id)).mappings().one())


def test_inserts_and_updates_write_what_session_execute_writes(world):
    """The same INSERT or UPDATE through Prepared and through Session.execute leaves the same row."""
    pupil, staff = world["pupil"], world["staff"]
    scans = Scan.__table__
    first_scan = db.session.scalar(select(scans.c.id).where(scans.c.actor_id == staff.id).order_by(scans.c.id).limit(1))
    base = {column: value for column, value in _row(scans, first_scan).items() if column in service._INSERT_SCAN.keys}
    mine = service._INSERT_SCAN.scalar_one(db.session, {**base, "nonce": "prepared-1"})
    theirs = db.session.execute(service._INSERT_SCAN.statement, {**base, "nonce": "session-1"}).scalar_one()
    assert {**_row(scans, mine), "id": 0, "nonce": ""} == {**_row(scans, theirs), "id": 0, "nonce": ""}

    entries = LedgerEntry.__table__
    head = ledger._HEAD.first(db.session, {"student_id": pupil.id})
    first = _row(entries, db.session.scalar(select(entries.c.id).where(entries.c.seq == 1,
                                                                       entries.c.student_id == pupil.id)))
    values = {column: first[column] for column in ledger._COLUMNS}
    mine = ledger._INSERT.scalar_one(db.session, {**values, "seq": head.seq + 1, "unique_key": "prepared-1"})
    theirs = db.session.execute(ledger._INSERT.statement,
                                {**values, "seq": head.seq + 2, "unique_key": "session-1"}).scalar_one()
    assert {**_row(entries, mine), "id": 0, "seq": 0, "unique_key": ""} == {
        **_row(entries, theirs), "id": 0, "seq": 0, "unique_key": ""}

    checkins = Checkin.__table__
    when = T0 + timedelta(hours=5)
    opened = {"student_id": pupil.id, "activity_id": world["later"].id, "venue_id": world["venue"].id,
              "entered_at": when, "deadline": when + timedelta(hours=1), "source": "staff", "device_id": None,
              "status": "open", "flags": [{"code": "x"}], "created_by": staff.id, "created_at": when}
    one = service._INSERT_CHECKIN.scalar_one(db.session, opened)
    two = db.session.execute(service._INSERT_CHECKIN.statement, opened).scalar_one()
    closing = {"exited_at": when + timedelta(minutes=50), "minutes": 50, "exit_source": "staff",
               "status": "completed"}
    service._CLOSE_STAY.execute(db.session, {**closing, "stay_id": one})
    db.session.execute(service._CLOSE_STAY.statement, {**closing, "stay_id": two})
    assert {**_row(checkins, one), "id": 0} == {**_row(checkins, two), "id": 0}
    assert _row(checkins, one)["flags"] == [{"code": "x"}] and _row(checkins, one)["minutes"] == 50


def test_inserts_and_updates_write_what_the_orm_reads_back(world):
    pupil, activity = world["pupil"], world["later"]
    when = T0 + timedelta(hours=5)
    new_id = service._INSERT_CHECKIN.scalar_one(db.session, {
        "student_id": pupil.id, "activity_id": activity.id, "venue_id": activity.venue_id, "entered_at": when,
        "deadline": when + timedelta(hours=1), "source": "staff", "device_id": None, "status": "open",
        "flags": [{"code": "x"}], "created_by": world["staff"].id, "created_at": when,
    })
    service._CLOSE_STAY.execute(db.session, {"stay_id": new_id, "exited_at": when + timedelta(minutes=50),
                                             "minutes": 50, "exit_source": "staff", "status": "completed"})
    stay = db.session.get(Checkin, new_id)
    assert (stay.entered_at, stay.exited_at, stay.minutes, stay.status, stay.flags) == (
        when, when + timedelta(minutes=50), 50, "completed", [{"code": "x"}])


def test_a_constraint_violation_is_sqlalchemys_integrity_error_and_the_session_goes_on(world):
    staff = world["staff"]
    existing = db.session.scalars(select(Scan).where(Scan.actor_id == staff.id).limit(1)).one()
    duplicate = {column: getattr(existing, column) for column in service._INSERT_SCAN.keys}
    with pytest.raises(IntegrityError), db.session.begin_nested():
        service._INSERT_SCAN.scalar_one(db.session, duplicate)
    assert ledger._HEAD.first(db.session, {"student_id": world["pupil"].id}).seq == 2


def test_cursor_listeners_get_sqlalchemys_own_execution(world):
    """A listener added to the engine while the session's connection is open (a profiler, Sentry,
    OpenTelemetry, Flask-SQLAlchemy's query recording) sees every statement before and after, with
    an execution context to keep things on, and the answer is the same."""
    seen = []

    def before(conn, cursor, statement, parameters, context, executemany):
        context._probe = "started"  # what query recorders do
        seen.append(("before", statement))

    def after(conn, cursor, statement, parameters, context, executemany):
        seen.append(("after", context._probe))

    pupil = world["pupil"]
    quiet = ledger._HEAD.first(db.session, {"student_id": pupil.id})  # the session's connection is open
    engine = db.session.get_bind().engine
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        watched = ledger._HEAD.first(db.session, {"student_id": pupil.id})
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    assert watched == quiet and type(watched) is type(quiet)
    assert [kind for kind, _ in seen] == ["before", "after"] and "ledger_entries" in seen[0][1]
    assert seen[1] == ("after", "started")


def test_a_missing_parameter_is_sqlalchemys_error_not_a_null(world):
    with pytest.raises(InvalidRequestError, match="student_id"):
        ledger._HEAD.first(db.session, {})


def test_a_value_its_type_refuses_is_a_statement_error(world):
    naive = datetime(2026, 11, 17, 10, 0)  # UTCDateTime refuses naive datetimes
    with pytest.raises(StatementError, match="naive"):
        service._EXIT_CANDIDATE.first(db.session, {"student_id": world["pupil"].id,
                                                   "activity_id": world["later"].id, "when": naive})


def test_statements_it_cannot_run_faithfully_are_refused(ctx):
    expanding = Prepared(select(Checkin.id).where(Checkin.status.in_(["open", "flagged"])))
    with pytest.raises(ValueError, match="IN lists"):
        expanding.rows(db.session, {})
    # checkins.status, flags and created_at have Python-side defaults: an INSERT that does not name
    # them would need SQLAlchemy's execution context to compute them
    partial = Prepared(insert(Checkin.__table__), keys=("student_id",))
    with pytest.raises(ValueError, match="default"):
        partial.execute(db.session, {"student_id": 1})
    bare = Prepared(select(Checkin.id).where(Checkin.id == bindparam("id")))
    assert bare.rows(db.session, {"id": -1}) == []


def test_the_history_statement_reads_the_chain_head_as_ledger_does(world):
    """The exit's one statement for the caps and the chain head gives the head _HEAD gives."""
    pupil = world["pupil"]
    head = ledger._HEAD.first(db.session, {"student_id": pupil.id})
    day_start, day_end = local_day_bounds(T0)
    row = credits._STAY_HISTORY_AND_HEAD.first(db.session, {
        "day_start": day_start, "day_end": day_end, "venue_id": world["venue"].id, "student_id": pupil.id,
        "school_year": school_year_of(T0.date()), "term": term_of(T0.date())})
    assert (row.head_seq, row.head_hash) == (head.seq, head.hash) and head.seq == 2
    empty = credits._STAY_HISTORY_AND_HEAD.first(db.session, {
        "day_start": day_start, "day_end": day_end, "venue_id": world["venue"].id, "student_id": -1,
        "school_year": school_year_of(T0.date()), "term": term_of(T0.date())})
    assert (empty.head_seq, empty.head_hash) == (None, None)


def test_a_head_read_without_the_lock_is_refused(world):
    from decimal import Decimal

    db.session.commit()  # a new transaction: the scans' locks are gone
    with pytest.raises(RuntimeError, match="lock"):
        ledger.append(student_id=world["pupil"].id, kind="adjustment", amount=Decimal("1.00"), source="adjustment",
                      occurred_at=T0, rule_version="sz-2025", explanation={}, head=(1, "x" * 64))


def test_pending_orm_changes_are_flushed_first(world):
    activity = world["later"]
    activity.title = "改过的标题"  # pending in the session, not flushed
    row = service._ACTIVITY.first(db.session, {"activity_id": activity.id})
    assert row.title == "改过的标题"
    with db.session.no_autoflush:
        activity.title = "又改了"
        assert service._ACTIVITY.first(db.session, {"activity_id": activity.id}).title == "改过的标题"


def test_a_connection_closed_underneath_is_sqlalchemys_error(ctx):
    """A driver connection already closed fails as SQLAlchemy's DBAPIError (which the API answers
    503), not as the driver's own exception."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.orm import Session

    engine = create_engine(db.engine.url)  # a plain engine: none of the app's SQLite hooks
    try:
        with Session(engine) as session:
            session.connection().connection.dbapi_connection.close()
            with pytest.raises(DBAPIError):
                ledger._HEAD.first(session, {"student_id": 1})
    finally:
        engine.dispose()


def test_a_rollback_to_a_savepoint_forgets_the_locks_taken(world):
    """PostgreSQL releases row locks taken inside a savepoint that is rolled back: the ledger must
    not go on believing it holds them (an append would then skip the lock)."""
    pupil = world["pupil"]
    db.session.commit()
    nested = db.session.begin_nested()
    ledger.lock_student(pupil.id)
    assert ledger.is_locked(pupil.id)
    nested.rollback()
    assert not ledger.is_locked(pupil.id)
    ledger.ensure_locked(pupil.id)  # takes it again
    assert ledger.is_locked(pupil.id)


def test_scalar_one_wants_exactly_one_row(world):
    from sqlalchemy.exc import MultipleResultsFound, NoResultFound

    by_id = Prepared(select(Checkin.id).where(Checkin.id == bindparam("id")))
    assert by_id.scalar_one(db.session, {"id": db.session.scalar(select(Checkin.id).limit(1))})
    with pytest.raises(NoResultFound):
        by_id.scalar_one(db.session, {"id": -1})
    by_pupil = Prepared(select(Checkin.id).where(Checkin.student_id == bindparam("student_id")))
    with pytest.raises(MultipleResultsFound):
        by_pupil.scalar_one(db.session, {"student_id": world["pupil"].id})
