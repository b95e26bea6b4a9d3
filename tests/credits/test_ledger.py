"""The ledger: hash chain, verification, tamper evidence, append-only guards, the CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from app.credits import ledger
from app.credits.models import GENESIS_HASH
from tests import factories as f
from tests.conftest import IS_POSTGRES

WHEN = datetime(2026, 10, 8, 3, 0, tzinfo=UTC)


def _append(student_id, amount="1.00", n=0):
    return ledger.append(
        student_id=student_id, kind="adjustment", amount=Decimal(amount), source="manual",
        occurred_at=WHEN, rule_version="sz-2025", explanation={"reason": f"测试 {n}", "amount": amount},
    )


def test_chain_links_each_entry_to_the_one_before(ctx):
    pupil = f.student()
    first, second, third = (_append(pupil.id, "1.00", i) for i in range(3))
    assert [e.seq for e in (first, second, third)] == [1, 2, 3]
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash and third.prev_hash == second.hash
    assert first.school_year == "2026-2027" and first.term == 1
    assert ledger.entry_hash(second) == second.hash
    report = ledger.verify_chain(pupil.id)
    assert report.as_dict() == {"ok": True, "entries": 3, "head": third.hash, "first_bad_seq": None}


def test_chains_are_per_student(ctx):
    a, b = f.student(), f.student()
    _append(a.id)
    other = _append(b.id)
    assert other.seq == 1 and other.prev_hash == GENESIS_HASH


def test_canonical_json_is_stable_and_covers_every_field(ctx):
    pupil = f.student()
    entry = _append(pupil.id, "2.50")
    body = ledger.canonical_json(entry).decode()
    for name in ledger.HASHED_FIELDS:
        assert f'"{name}"' in body
    assert '"amount":"2.50"' in body and " " not in body.replace("测试 0", "")


def _tamper(db_session, sql, **params):
    """Alter the ledger behind the application's back, as a rogue DBA would."""
    if IS_POSTGRES:
        db_session.execute(text("SET LOCAL session_replication_role = replica"))
        db_session.execute(text(sql), params)
        db_session.execute(text("SET LOCAL session_replication_role = origin"))
    else:
        db_session.execute(text("DROP TRIGGER ledger_entries_no_update"))
        db_session.execute(text(sql), params)
    db_session.expire_all()


def test_an_altered_amount_is_found_at_its_seq(ctx, db_session):
    pupil = f.student()
    entries = [_append(pupil.id, "1.00", i) for i in range(5)]
    _tamper(db_session, "UPDATE ledger_entries SET amount = 900 WHERE id = :id", id=entries[2].id)
    report = ledger.verify_chain(pupil.id)
    assert report.ok is False and report.first_bad_seq == 3


def test_a_rehashed_forgery_still_breaks_the_next_link(ctx, db_session):
    pupil = f.student()
    entries = [_append(pupil.id, "1.00", i) for i in range(3)]
    forged = entries[0]
    forged.amount = Decimal("9.00")
    new_hash = ledger.entry_hash(forged)  # the returned entry is detached: changing it writes nothing
    _tamper(db_session, "UPDATE ledger_entries SET amount = 900, hash = :h WHERE id = :id", h=new_hash, id=forged.id)
    assert ledger.verify_chain(pupil.id).first_bad_seq == 2


def test_the_database_refuses_updates_and_deletes(ctx, db_session):
    pupil = f.student()
    entry = _append(pupil.id)
    for sql in ("UPDATE ledger_entries SET amount = 0 WHERE id = :id", "DELETE FROM ledger_entries WHERE id = :id"):
        with pytest.raises(DatabaseError, match="append-only"), db_session.begin_nested():
            db_session.execute(text(sql), {"id": entry.id})


def test_cli_verify_exits_nonzero_on_a_break(app, ctx, db_session):
    pupil = f.student()
    entries = [_append(pupil.id, "1.00", i) for i in range(2)]
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["ledger", "verify"])
    assert ok.exit_code == 0 and "0 broken" in ok.output
    _tamper(db_session, "UPDATE ledger_entries SET explanation = :e WHERE id = :id", e='{"x": 1}', id=entries[1].id)
    broken = runner.invoke(args=["ledger", "verify"])
    assert broken.exit_code == 1
    assert f"student {pupil.id}: first bad seq 2" in broken.output
