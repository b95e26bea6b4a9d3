"""Appends queue their entry for the roll-ups (a trigger) and refresh() folds the queue: the scan
path never touches an aggregate row, a rolled-back append leaves nothing queued, and what refresh
folds equals the from-scratch computation whether entries arrive before or after a pupil moves."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select

from app.credits import ledger
from app.extensions import db
from app.stats import rollup
from app.stats.models import StatsCell, StatsDirty, StatsStudentCell
from tests import factories as f

T0 = datetime(2026, 10, 12, 2, 0, tzinfo=UTC)


def _append(student, venue, amount="1.50", kind="lecture"):
    return ledger.append(student_id=student.id, kind="credit", amount=Decimal(amount), source="checkin",
                         activity_kind=kind, venue_id=venue.id, occurred_at=T0, rule_version="sz-2025",
                         explanation={"summary": "test"})


def _queued_entries() -> list[int]:
    return list(db.session.scalars(select(StatsDirty.ref_id).where(StatsDirty.kind == "entry")))


def _credits(school_id: int) -> int | None:
    return db.session.scalar(select(StatsCell.credits).where(
        StatsCell.school_id == school_id, StatsCell.grain == 0, StatsCell.school_year == "2026-2027"))


def test_an_append_queues_its_entry_and_touches_no_rollup(app):
    district = f.district()
    pupil = f.student(f.school_class(f.school(district), grade=5))
    venue = f.venue(district)
    rollup.refresh()
    before = db.session.scalar(select(func.count()).select_from(StatsStudentCell))
    entry = _append(pupil, venue)
    assert _queued_entries() == [entry.id]
    assert db.session.scalar(select(func.count()).select_from(StatsStudentCell)) == before
    assert _credits(pupil.school_id) is None

    report = rollup.refresh()
    assert report.entries == 1
    assert _queued_entries() == []
    assert _credits(pupil.school_id) == 150
    assert rollup.check().ok


def test_a_rolled_back_append_leaves_nothing_queued(app):
    district = f.district()
    pupil = f.student(f.school_class(f.school(district), grade=5))
    venue = f.venue(district)
    db.session.commit()
    _append(pupil, venue)
    db.session.rollback()
    assert _queued_entries() == []
    rollup.refresh()
    assert _credits(pupil.school_id) is None
    assert rollup.check().ok


def test_entries_before_and_after_a_move_are_counted_where_the_pupil_is_now(app):
    district = f.district()
    school_a, school_b = f.school(district), f.school(district)
    pupil = f.student(f.school_class(school_a, grade=5))
    venue = f.venue(district)
    _append(pupil, venue, "2.00")
    rollup.refresh()
    assert _credits(school_a.id) == 200
    _append(pupil, venue, "1.00", kind="visit")  # queued, not folded yet …
    pupil.school_id, pupil.class_id = school_b.id, f.school_class(school_b, grade=5).id  # … when the pupil moves
    db.session.flush()
    report = rollup.refresh()
    assert report.entries == 1 and report.students == 1
    assert _credits(school_a.id) == 0
    assert _credits(school_b.id) == 300
    assert rollup.check().ok


def test_check_leaves_out_entries_still_queued(app):
    district = f.district()
    pupil = f.student(f.school_class(f.school(district), grade=5))
    venue = f.venue(district)
    _append(pupil, venue)
    rollup.refresh()
    _append(pupil, venue, "0.50")  # appended after the refresh: queued, not yet counted anywhere
    report = rollup.check()
    assert report.ok, report.as_dict()
    assert len(_queued_entries()) == 1


def test_refresh_folds_a_queue_larger_than_one_batch(app, monkeypatch):
    monkeypatch.setattr(rollup, "FOLD_BATCH", 4)
    district = f.district()
    pupils = [f.student(f.school_class(f.school(district), grade=g)) for g in (3, 7) for _ in range(3)]
    venue = f.venue(district)
    for i in range(25):
        _append(pupils[i % len(pupils)], venue, "0.25")
    report = rollup.refresh()
    assert report.entries == 25
    assert _queued_entries() == []
    assert rollup.check().ok


def test_a_pupil_moved_while_a_refresh_runs_is_not_lost(app, committed):
    """PostgreSQL: a pupil already queued, moved by a transaction that commits only after a refresh
    read them, must still be counted where they are now (refresh skips a pupil locked right now)."""
    from sqlalchemy import text

    with app.app_context():
        district = f.district()
        school_a, school_b = f.school(district), f.school(district)
        pupil = f.student(f.school_class(school_a, grade=5))
        class_b = f.school_class(school_b, grade=5)
        venue = f.venue(district)
        _append(pupil, venue, "2.00")
        db.session.commit()
        rollup.refresh()
        pupil.grade = 6  # queued again (a promotion) …
        db.session.commit()
        ids = {"pupil": pupil.id, "class_b": class_b.id, "school_b": school_b.id}
        db.session.remove()

        with db.engine.connect() as mover:  # … and moved by a transaction still open
            mover.execute(text("UPDATE students SET school_id = :school_b, class_id = :class_b WHERE id = :pupil"), ids)
            rollup.refresh()
            mover.commit()
        db.session.remove()
        rollup.refresh()
        report = rollup.check()
        assert report.ok, report.as_dict()
        db.session.remove()
