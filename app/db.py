"""Database plumbing shared by every package: portable column types and transaction mode."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

from flask import has_request_context, request
from sqlalchemy import BigInteger, DateTime, event
from sqlalchemy.engine import Engine
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

WRITE_LOCK_TIMEOUT = 30.0  # seconds, like busy_timeout


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
        try:
            super().commit()
        finally:
            self._release_write_lock()

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


def queue_for_write_lock(session) -> None:
    """SQLite: join the writers' queue now, in a transaction that is about to write but began
    deferred (a GET that writes, e.g. the statistics refresh). Call it before the transaction's
    first read. A no-op on PostgreSQL or when this transaction already holds the lock."""
    dbapi_connection = session.connection().connection.dbapi_connection
    if isinstance(dbapi_connection, QueuedWriterConnection):
        dbapi_connection.acquire_write_lock()


def sqlite_engine_options(uri: str, options: dict) -> dict:
    """Engine options for a SQLite file: connections that queue their writers (above)."""
    if not uri.startswith("sqlite") or ":memory:" in uri or uri.rstrip("/").endswith("sqlite:"):
        return options
    return {**options, "connect_args": {**options.get("connect_args", {}), "factory": QueuedWriterConnection}}


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
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        read_only = has_request_context() and (request.method in ("GET", "HEAD", "OPTIONS") or _read_phase())
        if not read_only:
            dbapi_connection = connection.connection.dbapi_connection
            if isinstance(dbapi_connection, QueuedWriterConnection):
                dbapi_connection.acquire_write_lock()
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


# Write endpoints whose first transaction only reads (SQLite: without the write lock) until the
# code calls end_read_phase(): a scan authenticates and reads the activity before it locks.
READ_FIRST_ENDPOINTS: set[str] = set()
_READ_PHASE = "ledger.sqlite_read_phase"


def _read_phase() -> bool:
    return request.environ.get(_READ_PHASE, request.endpoint in READ_FIRST_ENDPOINTS)


def end_read_phase(session) -> None:
    """End the read transaction of a READ_FIRST endpoint on SQLite, so that the next statement
    takes the write lock (BEGIN IMMEDIATE). What was read stays usable (expire_on_commit is off)
    but is a snapshot: re-read under the lock whatever must be current. A no-op elsewhere."""
    if has_request_context() and _read_phase():
        request.environ[_READ_PHASE] = False
        if session.get_bind().dialect.name == "sqlite":
            session.commit()


def utcnow() -> datetime:
    """Now, as an aware UTC datetime (the one clock services use)."""
    return datetime.now(UTC)
