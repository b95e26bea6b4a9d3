"""Roll-ups kept exact with the ledger: updated with each append, reconciled when pupils or venues
change, rebuilt and checked from scratch on demand.

The model
---------
Every number the bureau sees is a sum of *pupil contributions*. A pupil's contribution is a pure
function of

* the pupil's fine cells (``stats_student_cells``: net cents and check-ins per school year, credit
  kind, venue and Asia/Shanghai month — the ledger folded once),
* the school, grade and active flag the pupil is counted under (``stats_students``),
* the venue kind of each venue (kept on the fine cell as counted) and the rule set for ``met``,

and :func:`contribution` computes it. Keeping the aggregates exact is then one rule applied
everywhere: *add (contribution after − contribution before)*.

* Appends do not touch the roll-ups: a database trigger queues every new ledger entry in
  ``stats_dirty`` (kind "entry"), in the append's own transaction, so a scan pays one small insert
  and never waits on an aggregate row. :func:`refresh` folds the queued entries before any statistics
  are answered (and ``flask stats refresh`` from cron keeps the queue short): per batch it reads the
  pupils' fine cells as they were, adds the entries, and adds (contribution after − contribution
  before) to the aggregates — on PostgreSQL as one statement of sorted multi-row upserts into the
  school- and district-level tables. Refreshes are serialised (the SQLite write lock; a PostgreSQL
  advisory lock), so one pupil's cells are never folded by two transactions at once.
* The district-level tables (``stats_district_cells``, ``stats_venue_districts``) are the school-level
  deltas summed by the school's district in that same statement; a venue's "schools reached" moves
  when the school-level row's pupils cross zero. City- and district-wide answers read them.
* Pupils inserted or changed (school, grade, active), venues whose kind changes and schools moved to
  another district are queued in ``stats_dirty`` by database triggers too (so roster imports, bulk
  updates and raw SQL are all seen); :func:`refresh` moves their contributions in the same pass.
* ``met`` depends on the active rule set: the counts carry the version they were computed under
  (``stats_state``); when another version is active :func:`refresh` recomputes them set-based (on
  PostgreSQL holding new aggregate writes meanwhile; a delta computed under the old version marks
  the counts stale again, so they converge).
* :func:`rebuild` recomputes everything from the ledger with set-based SQL (the migration's
  backfill, ``flask stats rebuild``); :func:`check` recomputes from scratch into temporary tables
  and compares (``flask stats check``), leaving out entries still queued (the stored tables do not
  count them yet).

The fine-cell dimensions mirror the transcript: the kind is ``transcripts.service.kind_of`` (an
activity kind, "competition", or "other" for adjustments without a kind), the month is the
Asia/Shanghai month of ``occurred_at``, and ``met`` is ``credits.rules.progress`` of the kinds
(without "other"), exactly as the transcript computes it. :data:`KIND_SQL` and :func:`met_case_sql` are
the set-based mirrors of those two functions; the tests hold them equal.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from sqlalchemy import bindparam, delete, event, func, select, text, update
from sqlalchemy.orm import Session, scoped_session

from app.credits.models import LedgerEntry
from app.credits.rules import ACTIVITY_KINDS, COMPETITION, SHANGHAI, RuleSet, progress
from app.db import queue_for_write_lock, utcnow
from app.extensions import db
from app.stats.models import (
    StatsCell,
    StatsDirty,
    StatsPopulation,
    StatsState,
    StatsStudent,
    StatsStudentCell,
)
from app.transcripts.service import kind_of  # the transcript's kind; KIND_SQL is its SQL mirror

log = logging.getLogger(__name__)

KIND, VENUE_KIND, MONTH = 1, 2, 4
GRAINS = (0, KIND, VENUE_KIND, MONTH, KIND | VENUE_KIND, KIND | MONTH, VENUE_KIND | MONTH)
ALL = ""
NO_VENUE = "none"
OTHER = "other"
MET_KINDS = (*ACTIVITY_KINDS, COMPETITION)  # the kinds progress() counts ("other" is not one)
BATCH = 500
# More queued pupils than this and a set-based rebuild is cheaper than moving them one by one.
REBUILD_ABOVE = 200_000
REBUILD_ENTRIES_ABOVE = 2_000_000
FOLD_BATCH = 20_000  # queued entries folded per statement batch
REFRESH_LOCK = 0x5354_4154  # "STAT": the advisory lock key of refresh/rebuild/check on PostgreSQL

# ---------------------------------------------------------------------------------------------
# Pure part: fine cells → contributions


@dataclass
class FineCell:
    kind: str
    venue_id: int
    month: str
    venue_kind: str
    amount: int  # cents
    checkins: int


@dataclass(frozen=True)
class Counted:
    """Where a pupil is counted: school, grade, active."""

    school_id: int
    grade: int
    active: bool


def month_of(moment: datetime) -> str:
    """The Asia/Shanghai month of an aware datetime, "2026-10"."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m")


def cents(amount) -> int:
    value = Decimal(amount) * 100
    if value != value.to_integral_value():
        raise ValueError(f"credit amount {amount} has more than two decimal places")
    return int(value)


class Delta:
    """Changes to the aggregate tables: stats_cells, stats_venue_cells, stats_population."""

    __slots__ = ("cells", "venues", "population")

    def __init__(self) -> None:
        self.cells: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
        self.venues: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
        self.population: dict[tuple, int] = defaultdict(int)

    def add(self, other: Delta, sign: int = 1) -> Delta:
        for mine, theirs in ((self.cells, other.cells), (self.venues, other.venues)):
            for key, values in theirs.items():
                acc = mine[key]
                for i, v in enumerate(values):
                    acc[i] += sign * v
        for key, v in other.population.items():
            self.population[key] += sign * v
        return self

    def prune(self) -> Delta:
        for table in (self.cells, self.venues):
            for key in [k for k, v in table.items() if not any(v)]:
                del table[key]
        for key in [k for k, v in self.population.items() if not v]:
            del self.population[key]
        return self

    def __bool__(self) -> bool:
        return bool(self.cells or self.venues or self.population)


def met_of(rules: RuleSet, grade: int, kinds: Mapping[str, int]) -> bool:
    """Whether net cents per kind meet the grade's yearly requirement (the transcript's rule)."""
    return progress(rules, grade, {k: Decimal(v) / 100 for k, v in kinds.items() if k in MET_KINDS}).met


def year_contribution(school_year: str, counted: Counted | None, cells: Iterable[FineCell], rules: RuleSet,
                      out: Delta | None = None) -> Delta:
    """What one pupil's fine cells of one school year add to the aggregates."""
    out = out if out is not None else Delta()
    if counted is None or not counted.active:
        return out
    school, grade = counted.school_id, counted.grade
    nets: dict[tuple, int] = defaultdict(int)
    venue_year: dict[int, list[int]] = {}
    venue_month: dict[tuple, list[int]] = {}
    any_cell = False
    for c in cells:
        any_cell = True
        for grain in GRAINS:
            nets[(grain, c.kind if grain & KIND else ALL, c.venue_kind if grain & VENUE_KIND else ALL,
                  c.month if grain & MONTH else ALL)] += c.amount
        if c.venue_id:
            for table, key in ((venue_year, c.venue_id), (venue_month, (c.venue_id, c.month))):
                acc = table.setdefault(key, [0, 0])
                acc[0] += c.checkins
                acc[1] += c.amount
    if not any_cell:
        return out
    for (grain, kind, venue_kind, month), net in nets.items():
        acc = out.cells[(school_year, grain, school, grade, kind, venue_kind, month)]
        acc[0] += net > 0
        acc[1] += net
    kinds = {kind: net for (grain, kind, _v, _m), net in nets.items() if grain == KIND}
    if met_of(rules, grade, kinds):
        out.cells[(school_year, 0, school, grade, ALL, ALL, ALL)][2] += 1
    for venue_id, (checkins, amount) in venue_year.items():
        acc = out.venues[(school_year, ALL, venue_id, school)]
        acc[0] += checkins > 0
        acc[1] += checkins
        acc[2] += amount
    for (venue_id, month), (checkins, amount) in venue_month.items():
        acc = out.venues[(school_year, month, venue_id, school)]
        acc[0] += checkins > 0
        acc[1] += checkins
        acc[2] += amount
    return out


def contribution(counted: Counted | None, cells: Iterable[tuple[str, FineCell]], rules: RuleSet) -> Delta:
    """A pupil's whole contribution: the population count and every school year's cells
    (``cells`` are (school_year, FineCell) pairs)."""
    out = Delta()
    if counted is None or not counted.active:
        return out
    out.population[(counted.school_id, counted.grade)] += 1
    by_year: dict[str, list[FineCell]] = defaultdict(list)
    for school_year, c in cells:
        by_year[school_year].append(c)
    for school_year, year_cells in by_year.items():
        year_contribution(school_year, counted, year_cells, rules, out)
    return out


# ---------------------------------------------------------------------------------------------
# Pending deltas: kept per (savepoint) transaction, written at the outermost commit

_PENDING = "stats.pending"
_VERSION = "stats.met_version"


def _session(session=None) -> Session:
    """The Session itself (db.session is a scoped_session proxy, which lacks some methods)."""
    session = session if session is not None else db.session
    return session() if isinstance(session, scoped_session) else session


def _pending(session: Session) -> dict:
    return session.info.setdefault(_PENDING, {})


def _add_pending(session: Session, delta: Delta, version: str | None) -> None:
    delta.prune()
    if not delta:
        return
    tx = session.get_nested_transaction() or session.get_transaction()
    _pending(session).setdefault(tx, Delta()).add(delta)
    used = session.info.setdefault(_VERSION, set())
    used.add(version)


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session, previous_transaction) -> None:
    pending = session.info.get(_PENDING)
    if not pending:
        return
    for tx in list(pending):
        walk = tx
        while walk is not None:
            if walk is previous_transaction:
                del pending[tx]
                break
            walk = walk.parent
    if previous_transaction.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_VERSION, None)


@event.listens_for(Session, "after_transaction_end")
def _forget(session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_VERSION, None)


@event.listens_for(Session, "before_commit")
def _write_on_commit(session) -> None:
    if session.in_nested_transaction() or not session.info.get(_PENDING):
        return
    apply_pending(session)


def apply_pending(session: Session | None = None) -> None:
    """Write this transaction's accumulated aggregate deltas now (also done at commit)."""
    session = _session(session)
    pending = session.info.pop(_PENDING, None)
    used = session.info.pop(_VERSION, set())
    if not pending:
        return
    total = Delta()
    for delta in pending.values():
        total.add(delta)
    total.prune()
    if not total:
        return
    if session.get_bind().dialect.name == "postgresql":
        current = _upsert_delta_pg(session, total)
    else:
        _upsert_delta(session, total)
        current = session.scalar(select(StatsState.met_rule_version).where(StatsState.id == 1))
    if any(v[2] for v in total.cells.values()) and used != {current}:
        # The met deltas were computed under `used`; if another transaction switched the version
        # meanwhile (a rule activation, see refresh_met), leave the counts marked for recomputation.
        _mark_met_stale(session)


def _dialect_insert(session: Session):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


_UPSERT_SQL: dict[tuple, object] = {}


def _upsert_sql(table: str, key_cols: tuple[str, ...], value_cols: tuple[str, ...], mode: str = "add"):
    """INSERT … ON CONFLICT (key) DO UPDATE, as one fixed text statement (the same SQL on SQLite and
    PostgreSQL, compiled once): "add" adds the values, "set" replaces them."""
    cache_key = (table, key_cols, value_cols, mode)
    stmt = _UPSERT_SQL.get(cache_key)
    if stmt is None:
        cols = key_cols + value_cols
        update = ", ".join(
            f"{c} = {table}.{c} + excluded.{c}" if mode == "add" else f"{c} = excluded.{c}" for c in value_cols)
        stmt = _UPSERT_SQL[cache_key] = text(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)}) "
            f"ON CONFLICT ({', '.join(key_cols)}) DO UPDATE SET {update}")
    return stmt


def _upsert_add(session: Session, model, key_cols: tuple[str, ...], value_cols: tuple[str, ...],
                rows: dict[tuple, Iterable[int]]) -> None:
    """Add `rows` ({key: values}) into `model`'s table, in primary-key order (one lock order for all)."""
    if not rows:
        return
    params = [dict(zip(key_cols, key, strict=True)) | dict(zip(value_cols, vals, strict=True))
              for key, vals in sorted(rows.items())]
    session.execute(_upsert_sql(model.__tablename__, key_cols, value_cols), params)


CELL_KEY = ("school_year", "grain", "school_id", "grade", "activity_kind", "venue_kind", "month")
CELL_VALUES = ("participating", "credits", "met")
VENUE_KEY = ("school_year", "month", "venue_id", "school_id")
VENUE_VALUES = ("students", "checkins", "credits")
DISTRICT_CELL_KEY = ("school_year", "grain", "district_id", "grade", "activity_kind", "venue_kind", "month")
VENUE_DISTRICT_KEY = ("school_year", "month", "venue_id", "district_id")
VENUE_DISTRICT_VALUES = ("students", "checkins", "credits", "schools")
POPULATION_KEY = ("school_id", "grade")
POPULATION_VALUES = ("students",)


def _upsert_delta(session: Session, delta: Delta) -> None:
    """SQLite: the school-level rows, then the district-level ones (the same deltas, their school's
    district looked up in the statement; a venue row's school "reached" when its pupils go above 0)."""
    _upsert_add(session, StatsCell, CELL_KEY, CELL_VALUES, delta.cells)
    if delta.cells:
        session.execute(_DISTRICT_CELL_SQLITE, [dict(zip(CELL_KEY + CELL_VALUES, key + tuple(vals), strict=True))
                                                for key, vals in sorted(delta.cells.items())])
    for key, vals in sorted(delta.venues.items()):
        row = dict(zip(VENUE_KEY + VENUE_VALUES, key + tuple(vals), strict=True))
        after = session.execute(_VENUE_CELL_SQLITE, row).scalar_one()
        before = after - row["students"]
        row["schools"] = (after > 0) - (before > 0)
        session.execute(_VENUE_DISTRICT_SQLITE, row)
    _upsert_add(session, StatsPopulation, POPULATION_KEY, POPULATION_VALUES,
                {k: (v,) for k, v in delta.population.items()})


_DISTRICT_OF = "(SELECT s.district_id FROM schools s WHERE s.id = :school_id)"
_DISTRICT_CELL_SQLITE = text(
    "INSERT INTO stats_district_cells (school_year, grain, district_id, grade, activity_kind, venue_kind, month, "
    f"participating, credits, met) VALUES (:school_year, :grain, {_DISTRICT_OF}, :grade, :activity_kind, :venue_kind, "
    ":month, :participating, :credits, :met) ON CONFLICT (school_year, grain, district_id, grade, activity_kind, "
    "venue_kind, month) DO UPDATE SET participating = stats_district_cells.participating + excluded.participating, "
    "credits = stats_district_cells.credits + excluded.credits, met = stats_district_cells.met + excluded.met"
)
_VENUE_CELL_SQLITE = text(
    "INSERT INTO stats_venue_cells (school_year, month, venue_id, school_id, students, checkins, credits) "
    "VALUES (:school_year, :month, :venue_id, :school_id, :students, :checkins, :credits) "
    "ON CONFLICT (school_year, month, venue_id, school_id) DO UPDATE SET "
    "students = stats_venue_cells.students + excluded.students, checkins = stats_venue_cells.checkins + "
    "excluded.checkins, credits = stats_venue_cells.credits + excluded.credits RETURNING students"
)
_VENUE_DISTRICT_SQLITE = text(
    "INSERT INTO stats_venue_districts (school_year, month, venue_id, district_id, students, checkins, credits, schools) "
    f"VALUES (:school_year, :month, :venue_id, {_DISTRICT_OF}, :students, :checkins, :credits, :schools) "
    "ON CONFLICT (school_year, month, venue_id, district_id) DO UPDATE SET "
    "students = stats_venue_districts.students + excluded.students, "
    "checkins = stats_venue_districts.checkins + excluded.checkins, "
    "credits = stats_venue_districts.credits + excluded.credits, schools = stats_venue_districts.schools + excluded.schools"
)


_PG_TYPES = {"school_year": "varchar", "grain": "smallint", "school_id": "int", "grade": "smallint",
             "activity_kind": "varchar", "venue_kind": "varchar", "month": "varchar", "participating": "int",
             "credits": "bigint", "met": "int", "venue_id": "int", "students": "int", "checkins": "int",
             "district_id": "int", "schools": "int"}
_PG_APPLY: dict[tuple, object] = {}


def _upsert_delta_pg(session: Session, delta: Delta) -> str | None:
    """PostgreSQL: every aggregate table in one statement — rows from unnest() arrays, each table in
    primary-key order (one lock order for every transaction); the district tables are the same
    deltas summed by the school's district, a venue's "schools reached" moving when the school-level
    row's pupils cross zero (its RETURNING gives the value after this statement's update). Returns the
    met rule version, read after the row locks were granted."""
    parts = []
    params: dict[str, list] = {}
    for name, keys, values, rows in (
        ("c", CELL_KEY, CELL_VALUES, delta.cells),
        ("v", VENUE_KEY, VENUE_VALUES, delta.venues),
        ("p", POPULATION_KEY, POPULATION_VALUES, {k: (v,) for k, v in delta.population.items()}),
    ):
        if not rows:
            continue
        cols = keys + values
        ordered = sorted(rows.items())
        for i, col in enumerate(cols):
            params[f"{name}_{col}"] = [key[i] if i < len(keys) else vals[i - len(keys)] for key, vals in ordered]
        parts.append(name)
    cache_key = tuple(parts)
    stmt = _PG_APPLY.get(cache_key)
    if stmt is None:
        ctes = []
        if "c" in parts:
            ctes.append(_pg_add("c", "stats_cells", CELL_KEY, CELL_VALUES, f"SELECT * FROM {_unnest('c', CELL_KEY + CELL_VALUES)}"))
            by = ", ".join(f"u.{k}" for k in CELL_KEY if k != "school_id")
            ctes.append(_pg_add(
                "cd", "stats_district_cells", DISTRICT_CELL_KEY, CELL_VALUES,
                f"SELECT u.school_year, u.grain, s.district_id, u.grade, u.activity_kind, u.venue_kind, u.month, "
                f"SUM(u.participating), SUM(u.credits), SUM(u.met) FROM {_unnest('c', CELL_KEY + CELL_VALUES)} "
                f"JOIN schools s ON s.id = u.school_id GROUP BY {by}, s.district_id ORDER BY 1, 2, 3, 4, 5, 6, 7"))
        if "v" in parts:
            ctes.append(_pg_add("v", "stats_venue_cells", VENUE_KEY, VENUE_VALUES,
                                f"SELECT * FROM {_unnest('v', VENUE_KEY + VENUE_VALUES)}",
                                returning=", ".join(VENUE_KEY) + ", students AS after"))
            ctes.append(_pg_add(
                "vd", "stats_venue_districts", VENUE_DISTRICT_KEY, VENUE_DISTRICT_VALUES,
                "SELECT u.school_year, u.month, u.venue_id, s.district_id, SUM(u.students), SUM(u.checkins), "
                "SUM(u.credits), SUM((CASE WHEN v.after > 0 THEN 1 ELSE 0 END) - "
                "(CASE WHEN v.after - u.students > 0 THEN 1 ELSE 0 END)) "
                f"FROM {_unnest('v', VENUE_KEY + VENUE_VALUES)} JOIN v USING (school_year, month, venue_id, school_id) "
                "JOIN schools s ON s.id = u.school_id GROUP BY u.school_year, u.month, u.venue_id, s.district_id "
                "ORDER BY 1, 2, 3, 4"))
        if "p" in parts:
            ctes.append(_pg_add("p", "stats_population", POPULATION_KEY, POPULATION_VALUES,
                                f"SELECT * FROM {_unnest('p', POPULATION_KEY + POPULATION_VALUES)}"))
        counts = " + ".join(f"(SELECT COUNT(*) FROM {name})" for name in parts)
        stmt = _PG_APPLY[cache_key] = text(
            f"WITH {', '.join(ctes)} SELECT (SELECT met_rule_version FROM stats_state WHERE id = 1) AS version, "
            f"{counts} AS written")
    return session.execute(stmt, params).one().version


def _unnest(name: str, cols: tuple[str, ...]) -> str:
    arrays = ", ".join(f"CAST(:{name}_{c} AS {_PG_TYPES[c]}[])" for c in cols)
    return f"unnest({arrays}) AS u({', '.join(cols)})"


def _pg_add(name: str, table: str, keys: tuple[str, ...], values: tuple[str, ...], source: str,
            returning: str = "1") -> str:
    update = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in values)
    return (f"{name} AS (INSERT INTO {table} ({', '.join(keys + values)}) {source} "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {update} RETURNING {returning})")


def _mark_met_stale(session: Session) -> None:
    session.execute(update(StatsState).where(StatsState.id == 1).values(met_rule_version=None))


# ---------------------------------------------------------------------------------------------
# Rules for met: the version the stored counts were computed under

_rules_cache: dict[str, RuleSet] = {}


def rules_for(version: str | None) -> RuleSet:
    """The parsed rule set of `version` (None: the active one). Versions never change once stored."""
    from app.credits.service import active_rules, rules_by_version

    if version is None:
        return active_rules()
    cached = _rules_cache.get(version)
    if cached is None:
        cached = _rules_cache[version] = rules_by_version(version)
    return cached


def stored_met_version(session: Session) -> str | None:
    return session.scalar(select(StatsState.met_rule_version).where(StatsState.id == 1))


# ---------------------------------------------------------------------------------------------
# The hot path: one ledger entry

# The venue kind is the one the aggregate delta was computed with (read once per batch): read again
# here, a kind committed in between would leave the cell and the aggregates disagreeing.
_UPSERT_FINE = text(
    "INSERT INTO stats_student_cells (student_id, school_year, activity_kind, venue_id, month, venue_kind, amount, "
    "checkins) VALUES (:student_id, :school_year, :activity_kind, :venue_id, :month, :venue_kind, :amount, :checkins) "
    "ON CONFLICT (student_id, school_year, activity_kind, venue_id, month) DO UPDATE SET "
    "amount = stats_student_cells.amount + excluded.amount, checkins = stats_student_cells.checkins + excluded.checkins"
)


_SET_CELL_KIND = text(
    "UPDATE stats_student_cells SET venue_kind = :venue_kind "
    "WHERE student_id = :student_id AND venue_id = :venue_id AND venue_kind <> :venue_kind"
)


def fine_key(entry) -> tuple[str, str, int, str]:
    """(school year, kind, venue, month) of a ledger entry: the fine cell it is folded into."""
    return entry.school_year, kind_of(entry), entry.venue_id or 0, month_of(entry.occurred_at)


def entry_additions(entries: Iterable) -> dict[int, dict[tuple, list[int]]]:
    """Ledger entries as additions to fine cells: {student: {(year, kind, venue, month): [cents, check-ins]}}."""
    out: dict[int, dict[tuple, list[int]]] = defaultdict(dict)
    for e in entries:
        acc = out[e.student_id].setdefault(fine_key(e), [0, 0])
        acc[0] += cents(e.amount)
        acc[1] += 1 if e.kind == "credit" and e.source == "checkin" else 0
    return out


# ---------------------------------------------------------------------------------------------
# Reconciling pupils and venues that changed


def reconcile_student(student_id: int, *, session: Session | None = None) -> None:
    """Move one pupil's contributions from where they are counted to where they are now."""
    reconcile_students([student_id], session=session)


def reconcile_students(student_ids: Iterable[int], *, session: Session | None = None,
                       additions: Mapping[int, Mapping[tuple, list[int]]] | None = None) -> int:
    """Reconcile a batch of pupils (under the refresh lock): move each one's contribution from where
    it is counted (school, grade, active, venue kinds, fine cells) to where it is now, with
    `additions` (see :func:`entry_additions`) folded into their fine cells. Returns how many moved."""
    from app.orgs.models import Student
    from app.venues.models import Venue

    session = _session(session)
    additions = additions or {}
    all_ids = sorted(set(student_ids) | set(additions))
    if not all_ids:
        return 0
    version = stored_met_version(session)
    rules = rules_for(version)
    moved = 0
    for start in range(0, len(all_ids), BATCH):
        ids = all_ids[start:start + BATCH]
        current = {
            r.id: Counted(r.school_id, r.grade, bool(r.active))
            for r in session.execute(select(Student.id, Student.school_id, Student.grade, Student.active)
                                     .where(Student.id.in_(ids)))
        }
        counted = {
            r.student_id: Counted(r.school_id, r.grade, bool(r.active))
            for r in session.execute(select(StatsStudent.student_id, StatsStudent.school_id, StatsStudent.grade,
                                            StatsStudent.active).where(StatsStudent.student_id.in_(ids)))
        }
        c = StatsStudentCell
        cell_rows = session.execute(
            select(c.student_id, c.school_year, c.activity_kind, c.venue_id, c.month, c.venue_kind, c.amount,
                   c.checkins).where(c.student_id.in_(ids))
        ).all()
        venue_ids = {r.venue_id for r in cell_rows if r.venue_id}
        venue_ids.update(key[2] for sid in ids for key in additions.get(sid, ()) if key[2])
        kinds = dict(session.execute(select(Venue.id, Venue.kind).where(Venue.id.in_(venue_ids))).all()) if venue_ids else {}
        was: dict[int, list[tuple[str, FineCell]]] = defaultdict(list)
        now: dict[int, list[tuple[str, FineCell]]] = defaultdict(list)
        kind_changed: set[int] = set()
        for r in cell_rows:
            now_kind = kinds.get(r.venue_id, NO_VENUE) if r.venue_id else NO_VENUE
            if now_kind != r.venue_kind:
                kind_changed.add(r.student_id)
            was[r.student_id].append(
                (r.school_year, FineCell(r.activity_kind, r.venue_id, r.month, r.venue_kind, int(r.amount), int(r.checkins))))
            now[r.student_id].append(
                (r.school_year, FineCell(r.activity_kind, r.venue_id, r.month, now_kind, int(r.amount), int(r.checkins))))
        fine_rows = []
        for sid in ids:
            added = additions.get(sid)
            if not added:
                continue
            cells = {(year, c.kind, c.venue_id, c.month): c for year, c in now[sid]}
            for key, (amount, checkins) in added.items():
                year, kind, venue_id, month = key
                cell = cells.get(key)
                if cell is None:
                    cell = cells[key] = FineCell(kind, venue_id, month, kinds.get(venue_id, NO_VENUE), 0, 0)
                    now[sid].append((year, cell))
                cell.amount += amount
                cell.checkins += checkins
                fine_rows.append({"student_id": sid, "school_year": year, "activity_kind": kind, "venue_id": venue_id,
                                  "month": month, "venue_kind": cell.venue_kind, "amount": amount,
                                  "checkins": checkins})
        delta = Delta()
        snapshots = []
        for sid in ids:
            old, new = counted.get(sid), current.get(sid)
            if old == new and sid not in kind_changed and sid not in additions:
                continue
            moved += 1
            delta.add(contribution(new, now[sid], rules))
            delta.add(contribution(old, was[sid], rules), -1)
            if old != new:
                keep = new or (old and Counted(old.school_id, old.grade, False))  # a pupil row that is gone
                snapshots.append({"student_id": sid, "school_id": keep.school_id, "grade": keep.grade,
                                  "active": keep.active})
        if kind_changed:
            # The kinds the delta was computed with, not a fresh read (see _UPSERT_FINE).
            session.execute(_SET_CELL_KIND, [
                {"student_id": sid, "venue_id": c.venue_id, "venue_kind": c.venue_kind}
                for sid in sorted(kind_changed) for _year, c in now[sid] if c.venue_id
            ])
        if fine_rows:
            session.execute(_UPSERT_FINE, fine_rows)  # after the kind update: new cells take the current kind
        if snapshots:
            session.execute(_upsert_sql("stats_students", ("student_id",), ("school_id", "grade", "active"), "set"),
                            snapshots)
        _add_pending(session, delta, version)
    return moved


@dataclass
class RefreshReport:
    students: int = 0
    venues: int = 0
    schools: int = 0
    entries: int = 0
    met_recomputed: bool = False
    rebuilt: bool = False

    def as_dict(self) -> dict:
        return {"students": self.students, "venues": self.venues, "schools": self.schools, "entries": self.entries,
                "met_recomputed": self.met_recomputed,
                "rebuilt": self.rebuilt}


_NEEDS = text(
    "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM stats_dirty LIMIT 1) d) AS dirty, "
    "(SELECT met_rule_version FROM stats_state WHERE id = 1) AS stored, "
    "(SELECT COUNT(*) FROM stats_state WHERE id = 1) AS has_state, "
    "(SELECT version FROM rule_versions WHERE active = :yes LIMIT 1) AS active"
)


def needs_refresh(session: Session | None = None) -> bool:
    """Whether pupils/venues are queued or the met counts belong to another rule version."""
    session = _session(session)
    row = session.execute(_NEEDS, {"yes": True}).one()
    return bool(row.dirty) or not row.has_state or (row.active is not None and row.stored != row.active)


def refresh(session: Session | None = None, *, commit: bool = True) -> RefreshReport:
    """Bring the roll-ups up to date with pupils, venues and the active rule set.

    Reads first and returns at once when nothing is queued. Otherwise it ends the read
    transaction, takes the write lock before reading again (SQLite), reconciles every queued
    pupil and venue, recomputes ``met`` if the active rule version changed, and commits.
    """
    session = _session(session)
    report = RefreshReport()
    apply_pending(session)  # this transaction's own appends first (a no-op in a plain GET)
    if not needs_refresh(session):
        return report
    if commit:
        session.commit()
    _take_write_lock(session)
    pg = session.get_bind().dialect.name == "postgresql"

    venue_rows = session.execute(
        select(StatsDirty.ref_id).where(StatsDirty.kind == "venue").order_by(StatsDirty.ref_id)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    if venue_rows:
        report.venues = len(venue_rows)
        _queue_students_of_venues(session, venue_rows)
        session.execute(delete(StatsDirty).where(StatsDirty.kind == "venue", StatsDirty.ref_id.in_(venue_rows)))
    moved_schools = session.execute(
        select(StatsDirty.ref_id).where(StatsDirty.kind == "school").with_for_update(skip_locked=True)
    ).scalars().all()
    queued = session.scalar(select(func.count()).select_from(StatsDirty).where(StatsDirty.kind == "student")) or 0
    queued_entries = session.scalar(
        select(func.count()).select_from(StatsDirty).where(StatsDirty.kind == "entry")) or 0
    if queued > REBUILD_ABOVE or queued_entries > REBUILD_ENTRIES_ABOVE:
        log.info("stats: %s pupils and %s entries queued, rebuilding the roll-ups set-based", queued, queued_entries)
        rebuild(session)
        report.rebuilt, report.students, report.entries = True, queued, queued_entries
        if commit:
            session.commit()
        return report
    ids = session.execute(
        select(StatsDirty.ref_id).where(StatsDirty.kind == "student").order_by(StatsDirty.ref_id)
    ).scalars().all()
    for start in range(0, len(ids), 5000):
        batch = list(ids[start:start + 5000])
        if pg:
            # A pupil locked right now (a scan, a move not yet committed) is skipped and stays
            # queued: reconciled now, from the row as it was, a move committing afterwards would find
            # the pupil already queued, queue nothing, and be lost when this dequeues it.
            existing = set(session.execute(text("SELECT id FROM students WHERE id = ANY(:ids)"), {"ids": batch}).scalars())
            locked = set(session.execute(
                text("SELECT id FROM students WHERE id = ANY(:ids) ORDER BY id FOR UPDATE SKIP LOCKED"), {"ids": batch}
            ).scalars())
            batch = sorted(locked | (set(batch) - existing))
        reconcile_students(batch, session=session)
        _dequeue(session, "student", batch)
        report.students += len(batch)
        _batch_done(session, commit)
    if queued_entries:
        report.entries = _fold_entries(session, commit)
    if moved_schools:
        # A school moved to another district: its pupils stay where they are counted (per school),
        # only the district sums change. Rare; recomputed set-based, after the queued pupils.
        if pg:
            session.execute(text("LOCK TABLE stats_district_cells, stats_venue_districts IN EXCLUSIVE MODE"))
        rebuild_districts(session)
        session.execute(delete(StatsDirty).where(StatsDirty.kind == "school", StatsDirty.ref_id.in_(moved_schools)))
        report.schools = len(moved_schools)
    if commit:
        session.commit()
    report.met_recomputed = refresh_met(session, commit=commit)
    return report


# The entries a scan appended, as the fold needs them (queue row joined to its ledger entry).
_QUEUED_ENTRIES = (
    select(StatsDirty.ref_id, LedgerEntry.student_id, LedgerEntry.school_year, LedgerEntry.kind, LedgerEntry.source,
           LedgerEntry.activity_kind, LedgerEntry.competition, LedgerEntry.venue_id, LedgerEntry.occurred_at,
           LedgerEntry.amount)
    .join(LedgerEntry, LedgerEntry.id == StatsDirty.ref_id)
    .where(StatsDirty.kind == "entry", StatsDirty.ref_id > bindparam("after"), StatsDirty.ref_id <= bindparam("upto"))
    .order_by(StatsDirty.ref_id)
    .limit(bindparam("size"))
)


def _batch_done(session: Session, commit: bool) -> None:
    """Write a batch's deltas; when refresh owns the transaction, commit it (a long backlog then
    survives a request that times out half-way) and take the refresh lock again."""
    apply_pending(session)
    if commit:
        session.commit()
        _take_write_lock(session)


def _fold_entries(session: Session, commit: bool) -> int:
    """Fold the queued ledger entries into the roll-ups, FOLD_BATCH at a time (the caller holds the
    refresh lock). Entries queued after this started, with a higher id, wait for the next refresh."""
    size = FOLD_BATCH
    upto = session.scalar(select(func.max(StatsDirty.ref_id)).where(StatsDirty.kind == "entry"))
    after, folded = 0, 0
    while upto is not None:
        rows = session.execute(_QUEUED_ENTRIES, {"after": after, "upto": upto, "size": size}).all()
        if not rows:
            break
        reconcile_students((), session=session, additions=entry_additions(rows))
        _dequeue(session, "entry", [r.ref_id for r in rows])
        _batch_done(session, commit)
        after, folded = rows[-1].ref_id, folded + len(rows)
    return folded


def _dequeue(session: Session, kind: str, ids: list[int]) -> None:
    for start in range(0, len(ids), BATCH):
        session.execute(delete(StatsDirty).where(StatsDirty.kind == kind,
                                                 StatsDirty.ref_id.in_(ids[start:start + BATCH])))


def _take_write_lock(session: Session) -> None:
    """Serialise refreshes, rebuilds and checks: two folds of one pupil at once would each read the
    cells as they were before the other (PostgreSQL: a transaction-scoped advisory lock)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REFRESH_LOCK})
    else:
        # A deferred SQLite transaction that reads and then writes fails if another connection
        # wrote in between; writing first makes it wait for the lock instead (queued behind the
        # other writers when this transaction has not read yet: app.db.queue_for_write_lock).
        queue_for_write_lock(session)
        session.execute(text("DELETE FROM stats_dirty WHERE 1 = 0"))


def _queue_students_of_venues(session: Session, venue_ids: list[int]) -> None:
    ids = session.execute(
        select(StatsStudentCell.student_id).where(StatsStudentCell.venue_id.in_(venue_ids)).distinct()
    ).scalars().all()
    if ids:
        insert = _dialect_insert(session)
        for start in range(0, len(ids), BATCH):
            session.execute(insert(StatsDirty.__table__).values(
                [{"kind": "student", "ref_id": i} for i in ids[start:start + BATCH]]).on_conflict_do_nothing())


def refresh_met(session: Session | None = None, *, commit: bool = True) -> bool:
    """Recompute every ``met`` count under the active rule set if the stored ones belong to another."""
    from app.credits.service import active_rules

    session = _session(session)
    rules = active_rules()
    if stored_met_version(session) == rules.version:
        return False
    _take_write_lock(session)
    if session.get_bind().dialect.name == "postgresql":
        # Wait for in-flight commits of aggregate deltas and hold new ones until the counts are
        # rewritten; a delta computed under the old version then marks them stale again.
        session.execute(text("LOCK TABLE stats_cells, stats_district_cells IN SHARE MODE"))
    session.execute(text("UPDATE stats_cells SET met = 0 WHERE grain = 0 AND met <> 0"))
    session.execute(text(_met_upsert_sql(session, rules, "stats_student_cells", "stats_students")))
    session.execute(text(
        "UPDATE stats_district_cells SET met = (SELECT COALESCE(SUM(c.met), 0) FROM stats_cells c JOIN schools s "
        "ON s.id = c.school_id WHERE c.school_year = stats_district_cells.school_year AND c.grain = 0 "
        "AND s.district_id = stats_district_cells.district_id AND c.grade = stats_district_cells.grade) WHERE grain = 0"))
    _set_state(session, met_rule_version=rules.version)
    if commit:
        session.commit()
    return True


def _set_state(session: Session, **values) -> None:
    insert = _dialect_insert(session)
    stmt = insert(StatsState.__table__).values(id=1, **values)
    session.execute(stmt.on_conflict_do_update(index_elements=[StatsState.__table__.c.id], set_=values))


# ---------------------------------------------------------------------------------------------
# Set-based SQL: rebuild and check

KIND_SQL = (
    "CASE WHEN le.activity_kind IS NOT NULL AND le.activity_kind <> '' THEN le.activity_kind "
    "WHEN le.source = 'claim' OR (le.competition IS NOT NULL AND le.competition <> '') THEN 'competition' "
    "ELSE 'other' END"
)


def _month_sql(dialect: str, column: str) -> str:
    # Asia/Shanghai has kept UTC+8 without daylight saving since 1991.
    if dialect == "postgresql":
        return f"to_char({column} + interval '8 hours', 'YYYY-MM')"
    return f"strftime('%Y-%m', {column}, '+8 hours')"


def fine_cells_sql(dialect: str, *, folded_only: bool = False) -> str:
    """SELECT of every fine cell, folded from the ledger (same columns as stats_student_cells);
    `folded_only` leaves out the entries still queued for refresh()."""
    month = _month_sql(dialect, "le.occurred_at")
    where = ("WHERE NOT EXISTS (SELECT 1 FROM stats_dirty d WHERE d.kind = 'entry' AND d.ref_id = le.id) "
             if folded_only else "")
    return (
        f"SELECT le.student_id AS student_id, le.school_year AS school_year, {KIND_SQL} AS activity_kind, "
        f"COALESCE(le.venue_id, 0) AS venue_id, {month} AS month, COALESCE(MAX(v.kind), '{NO_VENUE}') AS venue_kind, "
        "SUM(le.amount) AS amount, "
        "SUM(CASE WHEN le.kind = 'credit' AND le.source = 'checkin' THEN 1 ELSE 0 END) AS checkins "
        f"FROM ledger_entries le LEFT JOIN venues v ON v.id = le.venue_id {where}"
        "GROUP BY 1, 2, 3, 4, 5"
    )


def _active(dialect: str, alias: str) -> str:
    return f"{alias}.active" if dialect == "postgresql" else f"{alias}.active = 1"


def grain_sql(dialect: str, grain: int, cells: str, students: str) -> str:
    """SELECT of the stats_cells rows of one entry grain (met 0), from a cells and a students source."""
    ak = "c.activity_kind" if grain & KIND else "''"
    vk = "c.venue_kind" if grain & VENUE_KIND else "''"
    mo = "c.month" if grain & MONTH else "''"
    return (
        f"SELECT school_year, {grain} AS grain, school_id, grade, ak AS activity_kind, vk AS venue_kind, mo AS month, "
        "SUM(CASE WHEN net > 0 THEN 1 ELSE 0 END) AS participating, SUM(net) AS credits, 0 AS met FROM ("
        f"SELECT c.school_year AS school_year, s.school_id AS school_id, s.grade AS grade, {ak} AS ak, {vk} AS vk, "
        f"{mo} AS mo, SUM(c.amount) AS net FROM {cells} c JOIN {students} s ON s.student_id = c.student_id "
        f"WHERE {_active(dialect, 's')} GROUP BY c.student_id, 1, 2, 3, 4, 5, 6) t "
        "GROUP BY school_year, school_id, grade, ak, vk, mo"
    )


def met_threshold_cents(required: Decimal) -> int:
    """Smallest total in cents that leaves nothing missing: progress() rounds the missing part
    half-up to 0.01, so a total counts once ``required - total < 0.005``."""
    return int((required * 100 - Decimal("0.5")).to_integral_value(rounding=ROUND_FLOOR)) + 1


def met_case_sql(rules: RuleSet, prefix: str = "k_") -> str:
    """A SQL CASE over ``grade`` and per-kind net cents columns that equals met_of()."""
    total = " + ".join(f"{prefix}{k}" for k in MET_KINDS)
    kinds = " + ".join(f"(CASE WHEN {prefix}{k} > 0 THEN 1 ELSE 0 END)" for k in MET_KINDS)
    whens = []
    for grade, req in sorted(rules.requirements.items()):
        parts = [f"({total}) >= {met_threshold_cents(req.credits)}", f"({kinds}) >= {int(req.min_kinds)}"]
        if req.one_of:
            parts.append("(" + " OR ".join(f"{prefix}{k} > 0" for k in req.one_of) + ")")
        whens.append(f"WHEN {int(grade)} THEN CASE WHEN {' AND '.join(parts)} THEN 1 ELSE 0 END")
    return f"CASE grade {' '.join(whens)} ELSE 0 END"


def pupil_years_sql(dialect: str, rules: RuleSet, cells: str, students: str) -> str:
    """SELECT per active pupil and school year: school, grade, net total and met (0/1)."""
    pivot = ", ".join(
        f"SUM(CASE WHEN c.activity_kind = '{k}' THEN c.amount ELSE 0 END) AS k_{k}" for k in MET_KINDS
    )
    return (
        f"SELECT school_year, school_id, grade, net, {met_case_sql(rules)} AS met FROM ("
        f"SELECT c.school_year AS school_year, s.school_id AS school_id, s.grade AS grade, SUM(c.amount) AS net, {pivot} "
        f"FROM {cells} c JOIN {students} s ON s.student_id = c.student_id WHERE {_active(dialect, 's')} "
        "GROUP BY c.student_id, c.school_year, s.school_id, s.grade) p"
    )


def grain0_sql(dialect: str, rules: RuleSet, cells: str, students: str) -> str:
    """SELECT of the grain-0 stats_cells rows, met included."""
    return (
        "SELECT school_year, 0 AS grain, school_id, grade, '' AS activity_kind, '' AS venue_kind, '' AS month, "
        "SUM(CASE WHEN net > 0 THEN 1 ELSE 0 END) AS participating, SUM(net) AS credits, SUM(met) AS met "
        f"FROM ({pupil_years_sql(dialect, rules, cells, students)}) y GROUP BY school_year, school_id, grade"
    )


def _met_upsert_sql(session: Session, rules: RuleSet, cells: str, students: str) -> str:
    dialect = session.get_bind().dialect.name
    return (
        "INSERT INTO stats_cells (school_year, grain, school_id, grade, activity_kind, venue_kind, month, "
        "participating, credits, met) "
        "SELECT school_year, 0, school_id, grade, '', '', '', 0, 0, SUM(met) FROM "
        f"({pupil_years_sql(dialect, rules, cells, students)}) y WHERE 1 = 1 GROUP BY school_year, school_id, grade "
        "ON CONFLICT (school_year, grain, school_id, grade, activity_kind, venue_kind, month) "
        "DO UPDATE SET met = excluded.met"
    )


def venue_sql(dialect: str, by_month: bool, cells: str, students: str) -> str:
    """SELECT of stats_venue_cells rows (the whole year, or per month)."""
    mo = "c.month" if by_month else "''"
    return (
        "SELECT school_year, mo AS month, venue_id, school_id, SUM(CASE WHEN ck > 0 THEN 1 ELSE 0 END) AS students, "
        "SUM(ck) AS checkins, SUM(net) AS credits FROM ("
        f"SELECT c.school_year AS school_year, {mo} AS mo, c.venue_id AS venue_id, s.school_id AS school_id, "
        f"SUM(c.checkins) AS ck, SUM(c.amount) AS net FROM {cells} c JOIN {students} s ON s.student_id = c.student_id "
        f"WHERE {_active(dialect, 's')} AND c.venue_id <> 0 GROUP BY c.student_id, 1, 2, 3, 4) t "
        "GROUP BY school_year, mo, venue_id, school_id"
    )


def population_sql(dialect: str, students: str) -> str:
    return (f"SELECT school_id, grade, COUNT(*) AS students FROM {students} s WHERE {_active(dialect, 's')} "
            "GROUP BY school_id, grade")


_TABLES = ("stats_cells", "stats_venue_cells", "stats_district_cells", "stats_venue_districts", "stats_population",
           "stats_student_cells", "stats_students", "stats_dirty")
_COUNTED = _TABLES[:-1]


def district_cells_sql(cells: str) -> str:
    """SELECT of stats_district_cells rows from a stats_cells-shaped source."""
    return (
        "SELECT c.school_year, c.grain, s.district_id, c.grade, c.activity_kind, c.venue_kind, c.month, "
        f"SUM(c.participating) AS participating, SUM(c.credits) AS credits, SUM(c.met) AS met FROM {cells} c "
        "JOIN schools s ON s.id = c.school_id "
        "GROUP BY c.school_year, c.grain, s.district_id, c.grade, c.activity_kind, c.venue_kind, c.month"
    )


def venue_districts_sql(venue_cells: str) -> str:
    """SELECT of stats_venue_districts rows from a stats_venue_cells-shaped source."""
    return (
        "SELECT c.school_year, c.month, c.venue_id, s.district_id, SUM(c.students) AS students, "
        "SUM(c.checkins) AS checkins, SUM(c.credits) AS credits, SUM(CASE WHEN c.students > 0 THEN 1 ELSE 0 END) AS schools "
        f"FROM {venue_cells} c JOIN schools s ON s.id = c.school_id "
        "GROUP BY c.school_year, c.month, c.venue_id, s.district_id"
    )


def rebuild_districts(session: Session) -> None:
    """Recompute the district-level tables from the school-level ones (a school moved district)."""
    for table in ("stats_district_cells", "stats_venue_districts"):
        session.execute(text(f"DELETE FROM {table}"))
    session.execute(text(
        "INSERT INTO stats_district_cells (school_year, grain, district_id, grade, activity_kind, venue_kind, month, "
        f"participating, credits, met) {district_cells_sql('stats_cells')}"))
    session.execute(text(
        "INSERT INTO stats_venue_districts (school_year, month, venue_id, district_id, students, checkins, credits, "
        f"schools) {venue_districts_sql('stats_venue_cells')}"))


def rebuild(session: Session | None = None, *, rules: RuleSet | None = None, progress_cb=None) -> dict:
    """Recompute every roll-up from the ledger, the pupils and the venues (set-based SQL).

    Runs in the caller's transaction (the caller commits). On PostgreSQL it locks the roll-up
    tables for the duration, so scans committing meanwhile wait for it and then add to the
    rebuilt numbers.
    """
    from app.credits.service import active_rules

    session = _session(session)
    dialect = session.get_bind().dialect.name
    say = progress_cb or (lambda _msg: None)
    rules = rules or active_rules()
    if dialect == "postgresql":
        # EXCLUSIVE on stats_dirty also holds every append (its trigger queues the entry there)
        # until this commits: the ledger read below is the whole ledger, and the queue is emptied.
        _take_write_lock(session)
        session.execute(text(f"LOCK TABLE {', '.join(_TABLES)} IN EXCLUSIVE MODE"))
        session.execute(text(f"TRUNCATE {', '.join(_TABLES)}"))
    else:
        for table in _TABLES:
            session.execute(text(f"DELETE FROM {table}"))
    session.info.pop(_PENDING, None)
    session.info.pop(_VERSION, None)
    say("pupils")
    session.execute(text(
        "INSERT INTO stats_students (student_id, school_id, grade, active) SELECT id, school_id, grade, active FROM students"))
    session.execute(text(f"INSERT INTO stats_population (school_id, grade, students) {population_sql(dialect, 'stats_students')}"))
    say("fine cells")
    session.execute(text(
        "INSERT INTO stats_student_cells (student_id, school_year, activity_kind, venue_id, month, venue_kind, amount, "
        f"checkins) {fine_cells_sql(dialect)}"))
    if dialect == "postgresql":
        session.execute(text("ANALYZE stats_student_cells"))
        session.execute(text("ANALYZE stats_students"))
    cols = "(school_year, grain, school_id, grade, activity_kind, venue_kind, month, participating, credits, met)"
    say("grain 0 (met)")
    session.execute(text(f"INSERT INTO stats_cells {cols} {grain0_sql(dialect, rules, 'stats_student_cells', 'stats_students')}"))
    for grain in GRAINS[1:]:
        say(f"grain {grain}")
        session.execute(text(f"INSERT INTO stats_cells {cols} {grain_sql(dialect, grain, 'stats_student_cells', 'stats_students')}"))
    for by_month in (False, True):
        say("venues by month" if by_month else "venues")
        session.execute(text(
            "INSERT INTO stats_venue_cells (school_year, month, venue_id, school_id, students, checkins, credits) "
            f"{venue_sql(dialect, by_month, 'stats_student_cells', 'stats_students')}"))
    say("districts")
    rebuild_districts(session)
    _set_state(session, met_rule_version=rules.version, rebuilt_at=utcnow())
    counts = {t: session.scalar(text(f"SELECT COUNT(*) FROM {t}")) for t in _COUNTED}
    if dialect == "postgresql":
        for table in _COUNTED:
            session.execute(text(f"ANALYZE {table}"))
    return counts


def rebuild_with_connection(session: Session) -> dict | None:
    """The migration's backfill: rebuild on a migration connection, with the active rule set read
    through that same connection (the app's session cannot see the migration's uncommitted rows)."""
    from app.credits.rules import parse_rule_set

    document = session.execute(
        text("SELECT document FROM rule_versions WHERE active = :yes"), {"yes": True}
    ).scalar()
    if document is None:
        return None
    if isinstance(document, str):
        import json

        document = json.loads(document)
    return rebuild(session, rules=parse_rule_set(document))


@dataclass
class CheckReport:
    ok: bool
    differences: dict[str, int]
    samples: dict[str, list]

    def as_dict(self) -> dict:
        return {"ok": self.ok, "differences": self.differences, "samples": self.samples}


def check(session: Session | None = None, *, sample: int = 5, lock: bool = True) -> CheckReport:
    """Recompute every roll-up from scratch (ledger, pupils, venues, active rules) in temporary
    tables and compare with the stored ones; zero rows (a cell whose pupils all moved away) are
    not differences. Call refresh() first: queued pupils are not yet expected to be counted. Entries
    appended meanwhile are queued, not counted, and left out of the from-scratch side too (no
    refresh can fold them while this holds the refresh lock). On PostgreSQL, `lock=False` is for a
    caller whose transaction is one REPEATABLE READ snapshot (`flask stats check`): a refresh
    commits its fold and its dequeue together, so one snapshot is consistent without holding every
    statistics request back for the whole check."""
    from app.credits.service import active_rules

    session = _session(session)
    dialect = session.get_bind().dialect.name
    rules = active_rules()
    if dialect == "postgresql" and lock:
        _take_write_lock(session)  # SQLite: this read transaction is one snapshot already
    cell_cols = ", ".join(CELL_KEY + CELL_VALUES)
    venue_cols = ", ".join(VENUE_KEY + VENUE_VALUES)
    fine_cols = "student_id, school_year, activity_kind, venue_id, month, venue_kind, amount, checkins"
    fresh, live = "stats_fresh_cells", "stats_fresh_students"
    # Each from-scratch table is computed once, into a temporary table, then compared both ways.
    temporary = [
        (live, "SELECT id AS student_id, school_id, grade, active FROM students"),
        (fresh, fine_cells_sql(dialect, folded_only=True)),
        ("stats_fresh_agg", " UNION ALL ".join(
            [grain0_sql(dialect, rules, fresh, live)] + [grain_sql(dialect, g, fresh, live) for g in GRAINS[1:]])),
        ("stats_fresh_venues", f"{venue_sql(dialect, False, fresh, live)} UNION ALL {venue_sql(dialect, True, fresh, live)}"),
    ]
    for name, query in temporary:
        session.execute(text(f"DROP TABLE IF EXISTS {name}"))
        session.execute(text(f"CREATE TEMPORARY TABLE {name} AS {query}"))
        if dialect == "postgresql":
            session.execute(text(f"ANALYZE {name}"))  # no autovacuum statistics for temporary tables
    district_cols = ", ".join(DISTRICT_CELL_KEY + CELL_VALUES)
    venue_district_cols = ", ".join(VENUE_DISTRICT_KEY + VENUE_DISTRICT_VALUES)
    nonzero_cells = "WHERE participating <> 0 OR credits <> 0 OR met <> 0"
    nonzero_venues = "WHERE students <> 0 OR checkins <> 0 OR credits <> 0"
    comparisons = {
        "stats_student_cells": (f"SELECT {fine_cols} FROM stats_student_cells", f"SELECT {fine_cols} FROM {fresh}"),
        "stats_students": ("SELECT student_id, school_id, grade, active FROM stats_students",
                           f"SELECT student_id, school_id, grade, active FROM {live}"),
        "stats_population": ("SELECT school_id, grade, students FROM stats_population WHERE students <> 0",
                             population_sql(dialect, live)),
        "stats_cells": (f"SELECT {cell_cols} FROM stats_cells {nonzero_cells}",
                        f"SELECT {cell_cols} FROM stats_fresh_agg {nonzero_cells}"),
        "stats_venue_cells": (f"SELECT {venue_cols} FROM stats_venue_cells {nonzero_venues}",
                              f"SELECT {venue_cols} FROM stats_fresh_venues {nonzero_venues}"),
        "stats_district_cells": (
            f"SELECT {district_cols} FROM stats_district_cells {nonzero_cells}",
            f"SELECT {district_cols} FROM ({district_cells_sql('stats_fresh_agg')}) f {nonzero_cells}"),
        "stats_venue_districts": (
            f"SELECT {venue_district_cols} FROM stats_venue_districts {nonzero_venues} OR schools <> 0",
            f"SELECT {venue_district_cols} FROM ({venue_districts_sql('stats_fresh_venues')}) f "
            f"{nonzero_venues} OR schools <> 0"),
    }
    differences: dict[str, int] = {}
    samples: dict[str, list] = {}
    for name, (stored, computed) in comparisons.items():
        n = 0
        found = []
        for label, a, b in (("stored_only", stored, computed), ("fresh_only", computed, stored)):
            count = session.execute(text(f"SELECT COUNT(*) FROM ({a} EXCEPT {b}) d")).scalar() or 0
            if count:
                rows = session.execute(text(f"SELECT * FROM ({a} EXCEPT {b}) d LIMIT {int(sample)}")).all()
                found += [{label: [_plain(v) for v in r]} for r in rows]
            n += count
        differences[name] = n
        if found:
            samples[name] = found
    met_ok = stored_met_version(session) == rules.version
    differences["met_rule_version"] = 0 if met_ok else 1
    queued = session.scalar(select(func.count()).select_from(StatsDirty).where(StatsDirty.kind != "entry")) or 0
    differences["stats_dirty"] = queued
    for name, _query in temporary:
        session.execute(text(f"DROP TABLE IF EXISTS {name}"))
    return CheckReport(ok=not any(differences.values()), differences=differences, samples=samples)


def _plain(value):
    return value if isinstance(value, (int, str, type(None), bool)) else str(value)
