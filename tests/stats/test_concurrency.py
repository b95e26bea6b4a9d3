"""Real threads against PostgreSQL: many transactions, each appending for pupils of several schools in
its own order, all updating the same aggregate rows — no deadlock, no lost update, and the roll-ups
still equal the ledger recomputed from scratch. Meanwhile statistics are read and a pupil is moved."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.credits import ledger
from app.extensions import db
from app.orgs.models import Student
from app.stats import rollup
from app.stats.service import Scope, credit_grid
from tests import factories as f
from tests.threads import run_threads

THREADS = 12
T0 = datetime(2026, 10, 12, 2, 0, tzinfo=UTC)


def test_parallel_multi_pupil_transactions_keep_the_rollups_exact(app, committed):
    with app.app_context():
        district = f.district("龙岗区")
        venues = [f.venue(district, kind=k) for k in ("science_museum", "museum")]
        schools = [f.school(district) for _ in range(3)]
        pupils = [f.student(f.school_class(s, grade=g)) for s in schools for g in (3, 5) for _ in range(4)]
        ids, venue_ids = [p.id for p in pupils], [v.id for v in venues]
        db.session.commit()
        rollup.refresh()
        db.session.remove()

    def work(i: int) -> None:
        rng = random.Random(i)
        for round_ in range(4):
            # Several pupils of several schools in one transaction: in pupil order, as the
            # ledger's per-pupil locks require; the aggregate rows they touch come in any order.
            for sid in sorted(rng.sample(ids, 5)):
                ledger.append(student_id=sid, kind="credit", amount=Decimal(rng.choice(("0.50", "1.00", "2.00"))),
                              source="checkin", activity_kind=rng.choice(("visit", "lecture", "workshop")),
                              venue_id=rng.choice(venue_ids), rule_version="sz-2025",
                              occurred_at=T0 + timedelta(days=rng.randrange(60), hours=round_),
                              explanation={"summary": "thread"})
            db.session.commit()
            if i == 0 and round_ == 1:
                db.session.get(Student, ids[0]).grade = 6  # a promotion while others append
                db.session.commit()
            if i % 4 == 1:
                credit_grid(scope=Scope(None), school_year="2026-2027", dims=["school", "month"])
                db.session.rollback()

    run_threads(app, work, THREADS)
    with app.app_context():
        rollup.refresh()
        report = rollup.check()
        assert report.ok, report.as_dict()
        db.session.remove()
