"""Database plumbing shared by every package: portable column types and transaction mode."""

from __future__ import annotations

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
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        read_only = has_request_context() and (request.method in ("GET", "HEAD", "OPTIONS") or _read_phase())
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
