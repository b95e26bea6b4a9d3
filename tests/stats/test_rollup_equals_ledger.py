"""The roll-ups equal a from-scratch computation over the ledger, on random data (hypothesis):
credits, reversals, adjustments and competitions appended through credits.ledger.append, pupils
promoted, moved and deactivated, venues re-classified — then every grouping compared with the
brute-force reference, and rollup.check() (what `flask stats check` runs) finds no difference."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.credits import ledger
from app.credits.rules import ACTIVITY_KINDS, SHANGHAI, VENUE_KINDS
from app.credits.service import active_rules
from app.extensions import db
from app.stats import rollup
from app.stats.service import DIMENSIONS, Scope, credit_grid, venue_grid
from tests import factories as f
from tests.stats import brute_credit_grid, brute_venue_grid, frozen

YEAR = "2026-2027"
YEAR_START = datetime(2026, 9, 1, tzinfo=SHANGHAI)
ALL_GROUPINGS = [list(c) for n in (1, 2) for c in itertools.combinations(DIMENSIONS, n)]


def service_grid(scope_district, dims, school_year=YEAR):
    rollup.refresh()
    rows, _ = credit_grid(scope=Scope(scope_district), school_year=school_year, dims=dims)
    return {frozen(r.key): {"students": r.students, "participating": r.participating,
                            "credits": Decimal(r.credits) / 100, "met": r.met} for r in rows}


def service_venue_grid(scope_district, by_month, school_year=YEAR):
    rollup.refresh()
    rows, _ = venue_grid(scope=Scope(scope_district), school_year=school_year, by_month=by_month, pupil_dim=None)
    return {
        (r.key["venue"], *((r.key["month"],) if by_month else ())): {
            "checkins": r.extra["checkins"], "students": r.students, "schools": r.extra["schools"],
            "districts": r.extra["districts"], "credits": Decimal(r.credits) / 100}
        for r in rows
    }


def assert_all_equal(districts):
    """Every grouping (city and one district's scope), both venue grids, and rollup.check()."""
    db.session.commit()
    rollup.refresh()
    rules = active_rules()
    for scope in (None, districts[0].id):
        for dims in ALL_GROUPINGS:
            got = service_grid(scope, [d for d in DIMENSIONS if d in dims])
            want = brute_credit_grid(scope_district=scope, school_year=YEAR, dims=dims, rules=rules)
            assert got == want, (scope, dims)
        for by_month in (False, True):
            assert service_venue_grid(scope, by_month) == brute_venue_grid(
                scope_district=scope, school_year=YEAR, by_month=by_month)
    report = rollup.check()
    assert report.ok, report.as_dict()


class World:
    """Two districts, three schools, a handful of pupils across grades, three venues."""

    def __init__(self):
        self.districts = [f.district("福田区"), f.district("南山区")]
        self.schools = [f.school(self.districts[0]), f.school(self.districts[0]), f.school(self.districts[1])]
        self.classes = {(s.id, g): f.school_class(s, grade=g) for s in self.schools for g in (1, 3, 5, 8)}
        self.pupils = [f.student(self.classes[(self.schools[i % 3].id, (1, 3, 5, 8)[i % 4])]) for i in range(9)]
        self.venues = [f.venue(self.districts[0], kind="science_museum"), f.venue(self.districts[1], kind="museum"),
                       f.venue(self.districts[1], kind="campus", level="district")]
        self.entries = []

    def append(self, op):
        _, p, what, cents, v, day, hour = op
        pupil = self.pupils[p]
        occurred = (YEAR_START + timedelta(days=day, hours=hour)).astimezone(UTC)
        common = {"student_id": pupil.id, "occurred_at": occurred, "rule_version": "sz-2025",
                  "explanation": {"summary": "test"}}
        amount = Decimal(cents) / 100
        if what in ACTIVITY_KINDS:
            entry = ledger.append(kind="credit", amount=abs(amount), source="checkin", activity_kind=what,
                                  venue_id=self.venues[v].id, **common)
        elif what == "competition":
            entry = ledger.append(kind="credit", amount=abs(amount), source="claim", competition="机器人比赛", **common)
        elif what == "adjust-kind":
            entry = ledger.append(kind="adjustment", amount=amount, source="manual", activity_kind="workshop", **common)
        else:  # an adjustment without a kind: "other"
            entry = ledger.append(kind="adjustment", amount=amount, source="manual", **common)
        self.entries.append(entry)

    def reverse(self, op):
        if not self.entries:
            return
        original = self.entries[op[1] % len(self.entries)]
        if original.kind != "credit" or original.amount == 0:
            return
        ledger.append(student_id=original.student_id, kind="reversal", amount=-original.amount, source=original.source,
                      activity_kind=original.activity_kind, competition=original.competition,
                      venue_id=original.venue_id, reverses_id=original.id, occurred_at=original.occurred_at,
                      rule_version=original.rule_version, explanation={"summary": "reversal"})

    def apply(self, op):
        kind = op[0]
        if kind == "entry":
            self.append(op)
        elif kind == "reverse":
            self.reverse(op)
        elif kind == "grade":
            self.pupils[op[1]].grade = op[2]
        elif kind == "school":
            pupil, school = self.pupils[op[1]], self.schools[op[2]]
            pupil.school_id, pupil.class_id = school.id, self.classes[(school.id, 5)].id
        elif kind == "active":
            self.pupils[op[1]].active = op[2]
        elif kind == "venue_kind":
            self.venues[op[1]].kind = op[2]
        elif kind == "school_district":
            self.schools[op[1]].district_id = self.districts[op[2]].id
        elif kind == "commit":
            db.session.commit()
        db.session.flush()


entry_op = st.tuples(
    st.just("entry"), st.integers(0, 8),
    st.sampled_from((*ACTIVITY_KINDS, "competition", "adjust-kind", "adjust-other")),
    st.integers(-300, 500), st.integers(0, 2),
    st.integers(-30, 364),  # a few entries fall in the previous school year
    st.integers(0, 23),
)
operation = st.one_of(
    entry_op, entry_op, entry_op, entry_op,
    st.tuples(st.just("reverse"), st.integers(0, 1000)),
    st.tuples(st.just("grade"), st.integers(0, 8), st.integers(1, 9)),
    st.tuples(st.just("school"), st.integers(0, 8), st.integers(0, 2)),
    st.tuples(st.just("active"), st.integers(0, 8), st.booleans()),
    st.tuples(st.just("venue_kind"), st.integers(0, 2), st.sampled_from(VENUE_KINDS)),
    st.tuples(st.just("school_district"), st.integers(0, 2), st.integers(0, 1)),
    st.tuples(st.just("commit")),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(ops=st.lists(operation, min_size=12, max_size=60))
def test_rollups_equal_the_ledger_recomputed_from_scratch(ctx, ops):
    world = World()
    for op in ops:
        world.apply(op)
    assert_all_equal(world.districts)


def random_ops(seed: int, n: int) -> list[tuple]:
    """A long deterministic mix of every operation (hypothesis explores short ones; these go deep)."""
    rng = random.Random(seed)
    kinds = (*ACTIVITY_KINDS, "competition", "adjust-kind", "adjust-other")
    ops = []
    for _ in range(n):
        r = rng.random()
        if r < 0.6:
            ops.append(("entry", rng.randrange(9), rng.choice(kinds), rng.randint(-300, 500), rng.randrange(3),
                        rng.randint(-30, 364), rng.randrange(24)))
        elif r < 0.68:
            ops.append(("reverse", rng.randrange(1000)))
        elif r < 0.76:
            ops.append(("grade", rng.randrange(9), rng.randint(1, 9)))
        elif r < 0.84:
            ops.append(("school", rng.randrange(9), rng.randrange(3)))
        elif r < 0.9:
            ops.append(("active", rng.randrange(9), rng.random() < 0.6))
        elif r < 0.94:
            ops.append(("venue_kind", rng.randrange(3), rng.choice(VENUE_KINDS)))
        elif r < 0.96:
            ops.append(("school_district", rng.randrange(3), rng.randrange(2)))
        else:
            ops.append(("commit",))
    return ops


@pytest.mark.parametrize("seed", range(6))
def test_long_random_histories_equal_the_ledger(ctx, seed):
    world = World()
    for op in random_ops(seed, 150):
        world.apply(op)
    assert_all_equal(world.districts)


@pytest.mark.parametrize("change", [
    ("grade", 0, 9), ("school", 0, 2), ("active", 0, False), ("venue_kind", 0, "museum"), ("school_district", 0, 1),
])
def test_each_kind_of_change_after_credits_is_counted_where_the_pupil_now_is(ctx, change):
    world = World()
    for day in range(5):
        world.append(("entry", 0, ACTIVITY_KINDS[day], 150, 0, day, 10))
    world.append(("entry", 0, "competition", 300, 0, 7, 10))
    db.session.commit()
    assert_all_equal(world.districts)
    world.apply(change)
    assert_all_equal(world.districts)
    world.append(("entry", 0, "visit", 100, 0, 30, 10))  # an append for a pupil queued as changed
    assert_all_equal(world.districts)
    if change[0] == "active":
        world.apply(("active", 0, True))
        assert_all_equal(world.districts)


def test_rebuild_gives_the_same_numbers_as_the_incremental_path(ctx):
    world = World()
    for i in range(60):
        world.append(("entry", i % 9, (*ACTIVITY_KINDS, "competition", "adjust-other")[i % 7], 50 + 37 * i % 400,
                      i % 3, (i * 11) % 300, i % 24))
    world.apply(("grade", 2, 9))
    world.apply(("active", 4, False))
    db.session.commit()
    rollup.refresh()
    before = {tuple(d): service_grid(None, d) for d in ALL_GROUPINGS}
    rollup.rebuild()
    db.session.commit()
    after = {tuple(d): service_grid(None, d) for d in ALL_GROUPINGS}
    assert before == after
    assert rollup.check().ok


def test_a_delta_recorded_in_a_rolled_back_savepoint_is_dropped(ctx):
    world = World()
    world.append(("entry", 0, "visit", 150, 0, 10, 10))
    db.session.commit()
    before = service_grid(None, ["school"])
    try:
        with db.session.begin_nested():
            world.append(("entry", 0, "visit", 200, 0, 11, 10))
            raise RuntimeError("refused after the append")
    except RuntimeError:
        pass
    with db.session.begin_nested():  # a savepoint that commits keeps its delta
        world.append(("entry", 1, "lecture", 100, 1, 12, 10))
    db.session.commit()
    after = service_grid(None, ["school"])
    school0 = frozen({"school": world.pupils[0].school_id})
    school1 = frozen({"school": world.pupils[1].school_id})
    assert after[school0]["credits"] == before[school0]["credits"]
    assert after[school1]["credits"] == before[school1]["credits"] + Decimal("1.00")
    assert rollup.check().ok


def test_a_new_pupil_counts_in_the_population_before_earning_anything(ctx):
    world = World()
    db.session.commit()
    key = frozen({"school": world.schools[0].id})
    students = service_grid(None, ["school"])[key]["students"]
    f.student(world.classes[(world.schools[0].id, 3)])
    db.session.commit()
    assert service_grid(None, ["school"])[key]["students"] == students + 1


def test_met_counts_follow_a_rule_set_activation(ctx):
    """met_rate uses the active rule set: activating an easier one recomputes the stored counts."""
    from app.credits.service import activate_version, add_rule_version

    world = World()
    pupil = world.pupils[0]  # grade 1: 4.0 credits required under sz-2025
    world.append(("entry", 0, "visit", 200, 0, 3, 10))
    world.append(("entry", 0, "lecture", 100, 0, 4, 10))
    db.session.commit()
    key = frozen({"school": pupil.school_id, "grade": pupil.grade})
    assert service_grid(None, ["school", "grade"])[key]["met"] == 0
    document = dict(active_rules().document)
    document["version"], document["effective_from"] = "easy-test", "2026-09-01"
    document["requirements"] = [{**r, "credits": "1.0"} for r in document["requirements"]]
    row = add_rule_version(document)
    activate_version(row)
    db.session.commit()
    assert rollup.needs_refresh()
    assert rollup.refresh().met_recomputed
    assert service_grid(None, ["school", "grade"])[key]["met"] == 1
    assert rollup.check().ok


@pytest.mark.parametrize("required", ["4.0", "6", "7.995", "8.004", "0.005", "10.00"])
def test_the_sql_met_threshold_agrees_with_progress(required):
    from app.credits.rules import money

    threshold = rollup.met_threshold_cents(Decimal(required))
    for total in range(threshold - 3, threshold + 3):
        missing = money(max(Decimal(required) - Decimal(total) / 100, Decimal(0)))
        assert (missing == 0) == (total >= threshold), (required, total)
