"""Test fixtures: one app per run on a freshly migrated database, one rolled-back transaction per test.

Set TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test to run on PostgreSQL; the
schema is dropped and rebuilt from the migrations at the start of every run. Without it the suite
uses a temporary SQLite file.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask.globals import app_ctx
from sqlalchemy import text
from sqlalchemy.orm import scoped_session, sessionmaker

from config.settings import Testing

_tmp = tempfile.mkdtemp(prefix="ledger-tests-")
DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{Path(_tmp) / 'test.sqlite3'}"
IS_POSTGRES = DATABASE_URL.startswith("postgresql")


class TestConfig(Testing):
    SQLALCHEMY_DATABASE_URI = DATABASE_URL
    EVIDENCE_DIR = str(Path(_tmp) / "evidence")
    PUBLIC_BASE_URL = "https://ledger.example.test"


def _reset_schema(app) -> None:
    from flask_migrate import upgrade

    from app.extensions import db

    with app.app_context():
        if IS_POSTGRES:
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        upgrade()
        db.session.remove()


def _app_ctx_id() -> int:
    return id(app_ctx._get_current_object())


@pytest.fixture(scope="session")
def app():
    from app import create_app

    application = create_app(TestConfig)
    _reset_schema(application)
    return application


@pytest.fixture(autouse=True)
def db_session(request, app):
    """Every test runs inside one outer transaction that is rolled back at the end.

    Services commit as usual; with join_transaction_mode="create_savepoint" their commits only
    release savepoints. Tests marked `committed` (real threads) skip this and clean up instead.
    """
    if "committed" in request.keywords:
        yield None
        return
    with app.app_context(), rolled_back_session() as (session, _connection):
        yield session


@contextmanager
def rolled_back_session():
    """Point db.session at one connection inside an outer transaction that is rolled back at the end
    (in the current app context); yields (session, connection). Commits inside only release
    savepoints (join_transaction_mode="create_savepoint")."""
    from app.extensions import db

    connection = db.engine.connect()
    outer = connection.begin()
    original = db.session
    # A plain SQLAlchemy session: Flask-SQLAlchemy's own would pick the engine per table and
    # so escape the outer transaction.
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    db.session = scoped_session(factory, scopefunc=_app_ctx_id)
    try:
        yield db.session, connection
    finally:
        db.session.remove()
        db.session = original
        outer.rollback()
        connection.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def ctx(app):
    """An app context for service-level tests."""
    with app.app_context():
        yield


@pytest.fixture
def committed(app):
    """For tests with real threads (PostgreSQL): data is really committed and wiped afterwards."""
    if not IS_POSTGRES:
        pytest.skip("concurrency tests need PostgreSQL (set TEST_DATABASE_URL)")
    from app.extensions import db

    yield
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            tables = [t.name for t in db.metadata.sorted_tables if t.name != "rule_versions"]
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "committed" in getattr(item, "fixturenames", ()):
            item.add_marker("committed")
            item.add_marker("postgres")


@pytest.fixture
def rate_limited_app():
    """Build a second app on the same database with rate limits on (and settings overridden).

    The shared Limiter keeps one `enabled` flag for every app, so it is restored afterwards;
    otherwise the rest of the suite would run rate-limited.
    """
    from app import create_app
    from app.extensions import db, limiter

    was_enabled = limiter.enabled
    built = []

    def build(**overrides):
        config = type("RateLimited", (TestConfig,), {"RATELIMIT_ENABLED": True,
                                                     "RATELIMIT_STORAGE_URI": "memory://", **overrides})
        built.append(create_app(config))
        return built[-1]

    try:
        yield build
    finally:
        for other in built:
            with other.app_context():
                db.engine.dispose()
        limiter.enabled = was_enabled


@pytest.fixture
def checkpoint_calls(monkeypatch):
    """Arm the WAL checkpoints of app.db for a test: `arm(every, probe)` makes every `every`-th
    write commit of the process due for one and returns the list that each checkpoint appends
    `(probe(connection), (busy, wal_frames, frames_copied))` to (the real checkpoint runs)."""
    import app.db as appdb
    from app.db import QueuedWriterConnection

    def arm(every: int, probe):
        monkeypatch.setattr(appdb, "CHECKPOINT_EVERY", every)
        monkeypatch.setattr(QueuedWriterConnection, "_write_commits", 0)
        calls = []
        real = appdb.wal_checkpoint

        def recording(connection):
            seen = probe(connection)
            result = real(connection)
            calls.append((seen, tuple(result) if result else None))
            return result

        monkeypatch.setattr(appdb, "wal_checkpoint", recording)
        return calls

    return arm
