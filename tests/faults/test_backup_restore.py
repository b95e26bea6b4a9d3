"""The backup and restore procedure of README "Running in production", run for real on PostgreSQL.

Pupils earn credits through the HTTP API; `pg_dump -Fc` copies the database; `pg_restore` loads the
copy into a fresh database; the real CLI (`flask --app wsgi ledger verify`, `stats check`, in a
subprocess with APP_ENV=production) confirms every chain and roll-up of the copy. Then one entry of
the copy is altered behind the triggers' back and `ledger verify` must exit 1 naming its seq.
Skipped unless TEST_DATABASE_URL is PostgreSQL and pg_dump / pg_restore are on PATH.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError

from app.db import utcnow
from app.extensions import db
from app.venues import codes
from tests import factories as f
from tests.conftest import DATABASE_URL, IS_POSTGRES

ROOT = Path(__file__).resolve().parents[2]
MISSING_TOOLS = [tool for tool in ("pg_dump", "pg_restore") if shutil.which(tool) is None]
pytestmark = [
    pytest.mark.skipif(not IS_POSTGRES, reason="backup/restore needs PostgreSQL (TEST_DATABASE_URL)"),
    pytest.mark.skipif(bool(MISSING_TOOLS), reason=f"not on PATH: {', '.join(MISSING_TOOLS)}"),
]

PUPILS = 4


def _libpq(url) -> str:
    """The libpq form of a SQLAlchemy URL (pg_dump knows no `+psycopg`)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _earn_credits(app) -> list[int]:
    """PUPILS pupils, each with a visit and a lecture scanned in and out by venue staff over the API."""
    with app.app_context():
        museum = f.venue(level="provincial")
        opened = utcnow() - timedelta(hours=4)
        visit = f.activity(museum, kind="visit", starts_at=opened, ends_at=opened + timedelta(hours=8))
        lecture = f.activity(museum, kind="lecture", starts_at=opened, ends_at=opened + timedelta(hours=8))
        staff = f.user("venue_staff", venues=[museum])
        pupils = [f.student(f.school_class(grade=grade)) for grade in (3, 5, 5, 8)][:PUPILS]
        headers = f.bearer(staff)
        client = app.test_client()
        for pupil in pupils:
            pass_token = codes.student_pass(pupil.id, pupil.pass_version)
            for act, direction, minutes_ago in ((visit, "entry", 170), (visit, "exit", 100),
                                                (lecture, "entry", 90), (lecture, "exit", 30)):
                body = {"student_pass": pass_token, "activity_id": act.id, "direction": direction,
                        "scanned_at": (utcnow() - timedelta(minutes=minutes_ago)).isoformat(),
                        "nonce": str(uuid.uuid4())}
                res = client.post("/api/v1/checkins", json=body, headers=headers)
                assert res.status_code == 201, res.json
        ids = [pupil.id for pupil in pupils]
        db.session.remove()
        return ids


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess:
    """`flask --app wsgi ARGS` as an operator runs it: production settings, DATABASE_URL of the copy."""
    env = {**os.environ, "APP_ENV": "production", "DATABASE_URL": database_url,
           "SECRET_KEY": secrets.token_urlsafe(48), "SIGNING_KEY": secrets.token_urlsafe(48), "LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _ledger(engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(text("SELECT student_id, seq, amount, prev_hash, hash FROM ledger_entries "
                                 "ORDER BY student_id, seq")).all()


def test_dump_restore_verify_then_tamper(app, committed, tmp_path):
    pupils = _earn_credits(app)
    source = make_url(DATABASE_URL)
    restored = source.set(database=f"{source.database}_restore_{os.getpid()}")
    admin = create_engine(source.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with app.app_context():
        original = _ledger(db.engine)
    chains = len({row.student_id for row in original})
    assert chains == PUPILS and len(original) >= 2 * PUPILS  # a visit and a lecture each, at least

    dump = tmp_path / "ledger.dump"
    subprocess.run(["pg_dump", "--format=custom", f"--file={dump}", _libpq(source)], check=True, timeout=120)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{restored.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{restored.database}"'))
    copy = create_engine(restored)
    try:
        subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={_libpq(restored)}", str(dump)],
                       check=True, timeout=120)
        assert _ledger(copy) == original  # every entry, hash and link came across

        restored_url = restored.render_as_string(hide_password=False)
        verified = _cli(restored_url, "ledger", "verify")
        assert verified.returncode == 0, verified.stderr
        assert verified.stdout.strip().endswith(f"{chains} chains, {len(original)} entries, 0 broken")
        stats = _cli(restored_url, "stats", "check")
        assert stats.returncode == 0, stats.stderr
        assert "stats roll-ups equal a from-scratch computation" in stats.stdout

        # The append-only triggers came back with the restore: an ordinary UPDATE is refused.
        victim = pupils[1]
        with pytest.raises(DatabaseError, match="append-only"), copy.begin() as conn:
            conn.execute(text("UPDATE ledger_entries SET amount = amount + 1 WHERE student_id = :s AND seq = 2"),
                         {"s": victim})
        # A superuser can switch them off for one transaction (as a rogue DBA would); verify finds it.
        with copy.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            changed = conn.execute(text("UPDATE ledger_entries SET amount = amount + 1 "
                                        "WHERE student_id = :s AND seq = 2"), {"s": victim}).rowcount
        assert changed == 1
        broken = _cli(restored_url, "ledger", "verify")
        assert broken.returncode == 1
        assert f"BROKEN student {victim}: first bad seq 2" in broken.stderr
        assert broken.stdout.strip().endswith(f"{chains} chains, {len(original)} entries, 1 broken")
        with app.app_context():
            assert _ledger(db.engine) == original  # the source database was never touched
    finally:
        copy.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{restored.database}" WITH (FORCE)'))
        admin.dispose()
