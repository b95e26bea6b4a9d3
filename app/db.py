"""Database plumbing shared by every package: portable column types and transaction mode."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections import namedtuple
from datetime import UTC, datetime
from decimal import Decimal

from flask import has_request_context, request
from sqlalchemy import BigInteger, DateTime, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InvalidRequestError, MultipleResultsFound, NoResultFound, OperationalError
from sqlalchemy.orm import scoped_session
from sqlalchemy.types import TypeDecorator

CENT = Decimal("0.01")


class UTCDateTime(TypeDecorator):
    """An aware datetime stored as naive UTC, so SQLite and PostgreSQL behave alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):  # SQLite aggregates (max/min) come back as text
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)


class Money(TypeDecorator):
    """A credit amount: Decimal with two places in Python, integer cents in the database.

    Integer cents are exact on every backend (SQLite has no decimal type) and make sums cheap.
    SQL aggregates keep the column type, so SUM(amount) also comes back as a Decimal.
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        cents = Decimal(value) * 100
        if cents != cents.to_integral_value():
            raise ValueError(f"credit amount {value} has more than two decimal places")
        return int(cents)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return (Decimal(int(value)) / 100).quantize(CENT)


try:
    import fcntl
except ImportError:  # not on Windows: there SQLite's own busy handler queues the writers
    fcntl = None

_thread_state = threading.local()


def _held_here() -> set[str]:
    """The write-lock files this thread holds (a second connection of the same thread must not wait)."""
    held = getattr(_thread_state, "held", None)
    if held is None:
        held = _thread_state.held = set()
    return held

# Seconds a writer waits for the queue (and SQLite's busy_timeout): well under gunicorn's 30 s worker
# timeout, so a request that cannot write answers 503 with Retry-After instead of being killed.
WRITE_LOCK_TIMEOUT = 15.0
CHECKPOINT_EVERY = 100  # write commits of one process between its WAL checkpoints


class _FlockTimeout(Exception):
    pass


def _raise_timeout(_signum, _frame):
    raise _FlockTimeout


def _wait_for_flock(fd: int, timeout: float) -> None:
    """Block on the flock for at most `timeout` seconds. In the main thread (a gunicorn sync worker,
    a CLI) the kernel wakes the waiter the moment the lock is free and SIGALRM bounds the wait;
    elsewhere (threads, or SIGALRM already in use) it retries every few hundred microseconds."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGALRM) in (
            signal.SIG_DFL, None):
        previous = signal.signal(signal.SIGALRM, _raise_timeout)
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except _FlockTimeout:
            # the alarm may have fired just after flock() returned: never leave the lock held
            fcntl.flock(fd, fcntl.LOCK_UN)
            raise sqlite3.OperationalError("database is locked (write queue timeout)") from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        return
    deadline, pause = time.monotonic() + timeout, 0.0001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError("database is locked (write queue timeout)") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.0005)


class QueuedWriterConnection(sqlite3.Connection):
    """A sqlite3 connection whose write transactions first take an flock on a file beside the
    database, and drop it when they commit or roll back.

    SQLite's busy handler makes a blocked writer sleep and retry (1, 2, 5 … up to 100 ms between
    tries), so with several gunicorn workers the write lock sat idle while the next writer slept:
    scans queued for hundreds of milliseconds with the database doing nothing. A writer waiting on
    the flock sleeps in the kernel and wakes as soon as it is released; SQLite still guards the
    data, the flock only queues the writers.
    """

    write_lock_path: str | None = None
    write_lock_timeout: float = WRITE_LOCK_TIMEOUT
    _lock_fd: int | None = None
    _locked = False
    _held_by: set | None = None  # the acquiring thread's set (a release may come from another thread)
    _write_commits = 0  # this process's, across its connections (see checkpoint_after_commit)

    def acquire_write_lock(self) -> None:
        """Wait for the write queue, at most write_lock_timeout seconds (then "database is locked",
        which the API answers 503 with Retry-After, as SQLite's own busy timeout did)."""
        if self._locked or not self.write_lock_path or fcntl is None:
            return
        held = _held_here()
        if self.write_lock_path in held:
            # This thread already writes through another connection: waiting would never end.
            raise sqlite3.OperationalError("database is locked (this thread already holds the write lock)")
        if self._lock_fd is None:
            self._lock_fd = os.open(self.write_lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _wait_for_flock(self._lock_fd, self.write_lock_timeout)
        self._locked, self._held_by = True, held
        held.add(self.write_lock_path)

    def _release_write_lock(self) -> None:
        if self._locked:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            self._locked = False
            self._held_by.discard(self.write_lock_path)

    def commit(self) -> None:
        wrote = self._locked
        try:
            super().commit()
        finally:
            self._release_write_lock()
        if wrote:
            self.checkpoint_after_commit()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release_write_lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release_write_lock()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def checkpoint_after_commit(self) -> None:
        """Copy the WAL back into the database every CHECKPOINT_EVERY write commits of this
        process, after the write lock is released.

        SQLite's automatic checkpoint (these connections turn it off) runs inside the commit that
        crosses 1,000 WAL pages, while that writer still holds the write lock: every ~70th scan
        spent 20–25 ms copying pages and syncing with all other writers queued behind it. A PASSIVE
        checkpoint needs no write lock (writers go on appending to the WAL meanwhile) and never
        waits: when another process is checkpointing, this one returns at once."""
        cls = QueuedWriterConnection
        cls._write_commits += 1
        if cls._write_commits % CHECKPOINT_EVERY:
            return
        if has_request_context():
            # after the answer is sent (sqlite_checkpoint_after_response), not on the caller's time
            request.environ[_CHECKPOINT_DUE] = True
        else:
            wal_checkpoint(self)


def wal_checkpoint(dbapi_connection) -> tuple | None:
    """A PASSIVE checkpoint on a connection outside any transaction (it never waits); returns
    SQLite's (busy, frames in the WAL, frames copied back), None if it could not run."""
    try:
        cursor = dbapi_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        try:
            return cursor.fetchone()
        finally:
            cursor.close()
    except sqlite3.Error:  # another checkpointer is busy; the next checkpoint catches up
        return None


_CHECKPOINT_DUE = "ledger.sqlite_checkpoint_due"


def sqlite_checkpoint_after_response(app, engine: Engine) -> None:
    """Run a request's due WAL checkpoint once its response has been sent (call_on_close), on a
    pooled connection of its own."""

    def checkpoint() -> None:
        connection = engine.raw_connection()
        try:
            wal_checkpoint(connection.driver_connection)
        finally:
            connection.close()

    @app.after_request
    def _schedule(response):
        if request.environ.pop(_CHECKPOINT_DUE, False):
            response.call_on_close(checkpoint)
        return response


def queue_for_write_lock(session) -> None:
    """SQLite: join the writers' queue now, in a transaction that is about to write but began
    deferred (a GET that writes, e.g. the statistics refresh). Call it before the transaction's
    first read. A no-op on PostgreSQL or when this transaction already holds the lock."""
    _join_write_queue(session.connection())


def _join_write_queue(connection) -> None:
    """Wait in the writers' queue on a SQLAlchemy connection's SQLite connection (no-op for others).
    The queue's timeout comes out as SQLAlchemy's OperationalError, as the driver's own errors do,
    so it is answered 503 with Retry-After wherever it happens (SQLAlchemy does not wrap what a
    "begin" listener raises)."""
    dbapi_connection = connection.connection.dbapi_connection
    if isinstance(dbapi_connection, QueuedWriterConnection):
        try:
            dbapi_connection.acquire_write_lock()
        except sqlite3.OperationalError as exc:
            raise OperationalError("BEGIN IMMEDIATE", (), exc) from exc


def sqlite_engine_options(uri: str, options: dict) -> dict:
    """Engine options for a SQLite file: connections that queue their writers (above), and no
    pre-ping (a file cannot go away under an open connection the way a server can)."""
    if not uri.startswith("sqlite") or ":memory:" in uri or uri.rstrip("/").endswith("sqlite:"):
        return options
    return {**options, "pool_pre_ping": False,
            "connect_args": {**options.get("connect_args", {}), "factory": QueuedWriterConnection}}


def configure_sqlite(engine: Engine) -> None:
    """Make SQLite safe for several app processes: WAL, a busy timeout, and write transactions
    that take the write lock when they begin (BEGIN IMMEDIATE).

    A deferred transaction that reads and then writes can fail with SQLITE_BUSY when another
    process wrote in between; starting every non-GET request's transaction with IMMEDIATE makes
    writers queue instead. GET requests read concurrently under WAL.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see below)
        if isinstance(dbapi_connection, QueuedWriterConnection) and engine.url.database:
            dbapi_connection.write_lock_path = f"{engine.url.database}-writelock"
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(WRITE_LOCK_TIMEOUT * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if isinstance(dbapi_connection, QueuedWriterConnection) and dbapi_connection.write_lock_path:
            # checkpoints run after the write lock is released (checkpoint_after_commit)
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        read_only = has_request_context() and (request.method in ("GET", "HEAD", "OPTIONS") or _read_phase())
        if not read_only:
            _join_write_queue(connection)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


# Write endpoints whose first transaction only reads (SQLite: without the write lock) until the
# code calls end_read_phase(): a scan authenticates and reads the activity before it locks.
READ_FIRST_ENDPOINTS: set[str] = set()
_READ_PHASE = "ledger.sqlite_read_phase"


def _read_phase() -> bool:
    return request.environ.get(_READ_PHASE, request.endpoint in READ_FIRST_ENDPOINTS)


def end_read_phase(session) -> None:
    """End the read part of a READ_FIRST endpoint: on SQLite, turn the session's read transaction
    into a write transaction (commit it, queue for the write lock, BEGIN IMMEDIATE) on the same
    connection, without ending the session's transaction. What was read stays in the session but is
    a snapshot: re-read under the lock whatever must be current. Outside a transaction (after a
    rollback) the next transaction simply begins as a write. A no-op on PostgreSQL.

    Ending the session's transaction instead (session.commit()) and beginning another cost a pool
    check-in and check-out, a reset and SQLAlchemy's begin and commit: about a tenth of a scan."""
    if not (has_request_context() and _read_phase()):
        return
    request.environ[_READ_PHASE] = False
    if session.get_bind().dialect.name != "sqlite" or not _session_of(session).in_transaction():
        return
    connection = session.connection()
    if connection.in_nested_transaction():
        # The session runs in a savepoint of a transaction it does not own (the tests' per-test
        # transaction): that transaction is not ours to commit, so end the session's instead.
        session.commit()
        return
    connection.connection.dbapi_connection.commit()  # the read transaction (nothing was written in it)
    _join_write_queue(connection)
    connection.exec_driver_sql("BEGIN IMMEDIATE")  # a statement, so cursor listeners see it


def _session_of(session):
    """The Session itself, given it or a scoped_session (which proxies only part of its methods)."""
    return session() if isinstance(session, scoped_session) else session


def utcnow() -> datetime:
    """Now, as an aware UTC datetime (the one clock services use)."""
    return datetime.now(UTC)


# --- hot-path statements -------------------------------------------------------------------------


class Prepared:
    """A Core statement compiled once per dialect and run on the session's own DBAPI connection.

    Session.execute spends 60–250 µs of Python on every statement (cache key, compiled-cache
    lookup, execution context, Result) around a SQLite query of 5–20 µs; a scan runs eight to
    eleven. Here the SQL string, the parameter order and the type processors are worked out once;
    a call converts the values with the same processors SQLAlchemy would use, executes, and
    returns plain named tuples. It runs in the session's transaction (the session begins it as
    usual) after the session's autoflush (pending ORM changes are written first, as Session.execute
    does for ORM-enabled statements), and errors come out as SQLAlchemy's (IntegrityError,
    StatementError for a value a type refuses, disconnects invalidated). When anything listens to
    the engine's cursor events (a profiler, Sentry, OpenTelemetry, Flask-SQLAlchemy's query
    recording), the statement goes through SQLAlchemy's own execution instead, so listeners get the
    execution context they expect.

    For fixed-shape statements only: no expanding IN lists (write a literal list with
    literal_column), and an INSERT or UPDATE names its columns (`keys`), none with a Python-side
    default the statement would have to compute.
    """

    __slots__ = ("statement", "keys", "_plans")

    def __init__(self, statement, *, keys: tuple[str, ...] | None = None):
        self.statement = statement
        self.keys = tuple(keys) if keys else None
        self._plans: dict = {}

    def rows(self, session, params: dict) -> list:
        return self._run(session, params)

    def first(self, session, params: dict):
        rows = self._run(session, params)
        return rows[0] if rows else None

    def scalar(self, session, params: dict):
        rows = self._run(session, params)
        return rows[0][0] if rows else None

    def scalar_one(self, session, params: dict):
        """The one row's first column (an INSERT … RETURNING id); NoResultFound or
        MultipleResultsFound otherwise, as Result.scalar_one."""
        rows = self._run(session, params)
        if len(rows) != 1:
            raise (NoResultFound if not rows else MultipleResultsFound)(
                f"expected one row, got {len(rows)}: {self.statement}")
        return rows[0][0]

    def execute(self, session, params: dict) -> None:
        self._run(session, params)

    def _plan(self, dialect) -> _Plan:
        plan = self._plans.get(dialect)
        if plan is None:
            plan = self._plans[dialect] = _Plan(self.statement, dialect, self.keys)
        return plan

    def _run(self, session, params: dict) -> list:
        if session.autoflush:
            session.flush()  # pending ORM changes first (nothing to do: ~3 µs)
        connection = session.connection()
        plan = self._plan(connection.dialect)
        dispatch = connection.dispatch  # joined with the engine's: listeners added later count too
        if dispatch.before_cursor_execute or dispatch.after_cursor_execute:
            result = connection.execute(self.statement, params)
            return [plan.row._make(row) for row in result] if plan.returns_rows else []
        try:
            args = plan.arguments(params)
            cursor = connection.connection.dbapi_connection.cursor()
        except InvalidRequestError:
            raise
        except Exception as exc:  # a value a type refuses, a connection already closed: as SQLAlchemy
            connection._handle_dbapi_exception(exc, plan.sql, params, None, None)
        try:
            cursor.execute(plan.sql, args)
            if plan.returns_rows:
                fetched = cursor.fetchall()
                if plan.result_processors is _UNKNOWN:
                    plan.learn_result_types(cursor.description)
            else:
                fetched = ()
        except Exception as exc:  # wrapped (and a lost connection invalidated) as SQLAlchemy does
            connection._handle_dbapi_exception(exc, plan.sql, args, cursor, None)
        finally:
            cursor.close()
        return plan.make_rows(fetched)


_UNKNOWN = object()


class _Plan:
    """One statement for one dialect: SQL text, where each parameter comes from, processors."""

    def __init__(self, statement, dialect, keys):
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys else None)
        sql = compiled.string
        if "POSTCOMPILE" in sql:
            raise ValueError("Prepared statements cannot expand IN lists: use literal_column values")
        if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
            raise ValueError("Prepared INSERT/UPDATE must name every column with a Python-side default")
        self.sql = sql
        processors = compiled._bind_processors
        escaped = compiled.escaped_bind_names
        names = compiled.positiontup if compiled.positional else list(compiled.binds)
        self.positional = compiled.positional
        self.binds = []  # (name in the SQL, key in the caller's params, default, required, processor)
        for name in names:
            bind = compiled.binds[name]
            self.binds.append((escaped.get(name, name), bind.key, bind.effective_value if not bind.required else None,
                               bind.required, processors.get(name)))
        columns = compiled._result_columns
        self.returns_rows = bool(columns)
        keynames = [column.keyname for column in columns]
        if len(set(keynames)) != len(keynames):
            raise ValueError(f"Prepared statement with duplicate column names: {keynames}")
        self.row = namedtuple("Row", keynames) if columns else None
        self._dialect, self._types = dialect, [column.type for column in columns]
        self.result_processors = _UNKNOWN

    def learn_result_types(self, description) -> None:
        """The result processors, once the first cursor tells the database's column types (some
        psycopg processors depend on them, as they do inside SQLAlchemy)."""
        processors = [type_._cached_result_processor(self._dialect, column[1])
                      for type_, column in zip(self._types, description, strict=True)]
        self.result_processors = processors if any(processors) else None

    def arguments(self, params: dict):
        values = []
        for _name, key, default, required, processor in self.binds:
            if key in params:
                value = params[key]
            elif required:
                raise InvalidRequestError(f"A value is required for bind parameter {key!r}")
            else:
                value = default
            values.append(processor(value) if processor is not None else value)
        if self.positional:
            return tuple(values)
        return {bind[0]: value for bind, value in zip(self.binds, values, strict=True)}

    def make_rows(self, fetched) -> list:
        if not fetched:
            return []
        make = self.row._make
        processors = self.result_processors
        if processors is None:
            return [make(row) for row in fetched]
        return [make([value if processor is None else processor(value)
                      for processor, value in zip(processors, row, strict=True)]) for row in fetched]
