"""`flask stats check | rebuild | refresh`: the CLI proves the roll-ups equal the ledger, and repairs them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import text

from app.credits import ledger
from tests import factories as f

T0 = datetime(2026, 10, 12, 2, 0, tzinfo=UTC)


def some_credits(db_session):
    venue = f.venue(kind="museum")
    klass = f.school_class(grade=7)
    for i in range(6):
        pupil = f.student(klass)
        for kind in ("visit", "workshop", "research")[: 1 + i % 3]:
            ledger.append(student_id=pupil.id, kind="credit", amount=Decimal("1.50"), source="checkin",
                          activity_kind=kind, venue_id=venue.id, occurred_at=T0, rule_version="sz-2025",
                          explanation={"summary": "test"})
    db_session.commit()


def test_check_passes_then_catches_tampering_and_rebuild_repairs(app, db_session):
    some_credits(db_session)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["stats", "check"])
    assert result.exit_code == 0, result.output
    assert "equal a from-scratch computation" in result.output

    db_session.execute(text("UPDATE stats_cells SET credits = credits + 100 WHERE grain = 1"))
    db_session.execute(text("UPDATE stats_venue_cells SET students = students + 1"))
    db_session.commit()
    result = runner.invoke(args=["stats", "check"])
    assert result.exit_code == 1
    assert "DIFFERENT" in result.output and "stats_cells" in result.output

    result = runner.invoke(args=["stats", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "rebuilt in" in result.output
    assert runner.invoke(args=["stats", "check"]).exit_code == 0


def test_refresh_counts_queued_pupils(app, db_session):
    klass = f.school_class(grade=4)
    for _ in range(3):
        f.student(klass)
    db_session.commit()
    result = app.test_cli_runner().invoke(args=["stats", "refresh"])
    assert result.exit_code == 0, result.output
    assert '"students": ' in result.output
    assert app.test_cli_runner().invoke(args=["stats", "check"]).exit_code == 0
