"""Bureau statistics (SPEC §8): credit aggregates and the venue activity index (科普活动指数), from
roll-ups, never naming a pupil.

Definitions
-----------
* **students** of a row — the active pupils in the row's pupil dimensions (district, school, grade),
  within the caller's scope: every enrolled pupil, whether or not they earned anything. School and
  grade are the pupil's *current* ones, for every school year asked; a pupil marked inactive (left
  the school) is out of the statistics altogether, entries included. For rows split by an entry
  dimension (activity_kind, venue_kind, month) ``students`` is still the population of the row's
  pupil dimensions (the whole scope when there are none).
* **participating** — pupils with a positive net credit in the row's cell: the school year's net
  total for pupil-dimension rows; the net within that kind / venue kind / month for entry rows.
* **participation_rate** = participating / students.
* **credits_total** — the net credits (credits, reversals, adjustments) of the row's pupils in the
  cell; **credits_mean** = credits_total / students (rounded half-up to 0.01).
* **met_rate** — the share of the row's students meeting the yearly requirement of their grade
  under the *active* rule set (SPEC §5), computed like the transcript (``credits.rules.progress``
  over the net credits per kind). For rows with an entry dimension it is ``null``: meeting the
  requirement is a property of a pupil's whole year, not of a month or a kind.
* Entry dimensions: **activity_kind** is the transcript's kind of an entry (an activity kind,
  ``competition``, or ``other`` for adjustments without a kind); **venue_kind** the kind of the
  entry's venue (``none`` for competitions and adjustments); **month** the Asia/Shanghai month of
  the activity ("2026-10"). Entry rows are listed only where the cell has credits or participants.
* Venue index, per venue: **checkins** — completed stays credited on the ledger (0.00 included);
  **students** — distinct pupils with such a stay; **schools** / **districts** — their distinct
  current schools and districts; **credits** — the net credits of entries at the venue.
* Scope: a district officer sees the pupils of their own district only (another district, or a
  school outside it, answers 404); a city officer and the admin see the city.

Small-cell suppression
----------------------
A row is *primarily* suppressed when it describes fewer than ``STATS_MIN_CELL`` (5) pupils: its
population (students) is below 5, or 1–4 pupils take part in it (their credits would describe
those few children). A suppressed row keeps its keys and label; every count, total and rate is
``null`` and ``"suppressed": true``.

Differencing guard (complementary suppression). Totals of a row's neighbours are published
elsewhere (a school's total next to its grades, a district's total next to its schools, the year
next to its months), so one hidden row among visible siblings could be recovered by subtraction.
Each answer is therefore computed over a table whose dimensions are the requested ones *plus every
filtered one* (a school's district is implied by the school), over the caller's whole scope — or,
for a table with a school dimension pinned by a school or district filter, over that district, which
contains every group its rows belong to; in that table, every *margin group* — the rows that agree
on all dimensions but one (schools grouped within their district; venues within their venue kind) —
must hide either no row or at least two. While some group hides exactly one, the visible
row of that group with the fewest students (then fewest participants, then key order) is hidden
too. Only then are the filters applied, so a filtered answer hides exactly what the full table
hides and a filter cannot peel a complement off. (When no row of the table is under the threshold
nothing can be hidden, and only the filtered slice is built — the same answer, faster.) Rows that do not exist (zero cells) are known
zeros and never need hiding.

What the guard does not promise: combining answers of *different* group-bys can in rare layouts
still narrow a hidden cell (a complete audit across all possible queries is a linear-programming
problem); the thresholds are conservative, no answer carries a pupil id or name, and the rows are
always aggregates of at least five pupils or hidden.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass
from operator import itemgetter

from flask import current_app, has_app_context
from sqlalchemy import BigInteger, and_, case, cast, func, literal, select, true

from app.credits.rules import ACTIVITY_KIND_LABELS, ACTIVITY_KINDS, COMPETITION, VENUE_KIND_LABELS, VENUE_KINDS
from app.errors import APIError, field_error, not_found
from app.extensions import db
from app.orgs.models import District, School
from app.stats import rollup
from app.stats.models import StatsCell, StatsDistrictCell, StatsPopulation, StatsVenueCell, StatsVenueDistrict
from app.transcripts.service import check_school_year
from app.venues.models import Venue

DIMENSIONS = ("district", "school", "grade", "activity_kind", "venue_kind", "month")
PUPIL_DIMS = ("district", "school", "grade")
ENTRY_BITS = {"activity_kind": rollup.KIND, "venue_kind": rollup.VENUE_KIND, "month": rollup.MONTH}
DEFAULT_MIN_CELL = 5
GRADE_LABELS = {1: "一年级", 2: "二年级", 3: "三年级", 4: "四年级", 5: "五年级", 6: "六年级", 7: "七年级",
                8: "八年级", 9: "九年级"}
KIND_LABELS = {**ACTIVITY_KIND_LABELS, rollup.OTHER: "其他（调整）"}
KIND_ORDER = {k: i for i, k in enumerate((*ACTIVITY_KINDS, COMPETITION, rollup.OTHER))}
VENUE_LABELS = {**VENUE_KIND_LABELS, rollup.NO_VENUE: "无场馆（竞赛、调整）"}
VENUE_ORDER = {k: i for i, k in enumerate((*VENUE_KINDS, rollup.NO_VENUE))}
OFFICER_ROLES = ("district_officer", "city_officer")
_PART = 128  # result rows fetched at a time (few alive at once: see credit_cells)


def min_cell() -> int:
    if has_app_context():
        return int(current_app.config.get("STATS_MIN_CELL", DEFAULT_MIN_CELL))
    return DEFAULT_MIN_CELL


# ---------------------------------------------------------------------------------------------
# Scope and filters


@dataclass(frozen=True)
class Scope:
    """The pupils an officer may count: one district, or the city (district_id None)."""

    district_id: int | None

    @classmethod
    def of(cls, user) -> Scope:
        if user.role == "district_officer":
            if user.district_id is None:  # an officer without a district sees nothing, not everything
                raise not_found("区")
            return cls(user.district_id)
        if user.role in ("city_officer", "admin"):
            return cls(None)
        raise APIError(403, "forbidden", "您的账号没有权限查看统计数据。")


@dataclass(frozen=True)
class Filters:
    district_id: int | None = None
    school_id: int | None = None
    grade: int | None = None


def check_filters(scope: Scope, filters: Filters) -> Filters:
    """404 for a district or school outside the caller's scope (or missing), 422 for a bad grade."""
    if filters.grade is not None and not 1 <= filters.grade <= 9:
        raise field_error("grade", "年级应为 1–9。")
    if filters.district_id is not None:
        if scope.district_id is not None and filters.district_id != scope.district_id:
            raise not_found("区")
        if db.session.get(District, filters.district_id) is None:
            raise not_found("区")
    if filters.school_id is not None:
        school = db.session.get(School, filters.school_id)
        if school is None or (scope.district_id is not None and school.district_id != scope.district_id):
            raise not_found("学校")
        if filters.district_id is not None and school.district_id != filters.district_id:
            raise not_found("学校")
    return filters


def parse_group_by(raw: str | list[str] | None, allowed: tuple[str, ...] = DIMENSIONS, max_dims: int = 2) -> list[str]:
    """"school,grade" → ["school", "grade"]: one or two distinct known dimensions."""
    items = raw if isinstance(raw, list) else [p.strip() for p in (raw or "").split(",") if p.strip()]
    if not items:
        raise field_error("group_by", f"请指定 1–{max_dims} 个分组维度：{', '.join(allowed)}。")
    unknown = [p for p in items if p not in allowed]
    if unknown:
        raise field_error("group_by", f"未知的分组维度 {', '.join(unknown)}；可用：{', '.join(allowed)}。")
    if len(set(items)) != len(items) or len(items) > max_dims:
        raise field_error("group_by", f"分组维度最多 {max_dims} 个且不能重复。")
    return items


# ---------------------------------------------------------------------------------------------
# Grid rows and suppression


class GridRow:
    """One row of a statistics table: its key (dimension → value), counts, and suppression flags."""

    __slots__ = ("key", "students", "participating", "credits", "met", "extra", "suppressed", "primary")

    def __init__(self, key: dict, students: int, participating: int, credits: int = 0, met: int = 0,
                 extra: dict | None = None):
        self.key = key
        self.students = students
        self.participating = participating
        self.credits = credits  # cents
        self.met = met
        self.extra = extra
        self.suppressed = False
        self.primary = False


def suppress(rows: list[GridRow], dims: list[str], threshold: int, parents: dict[str, dict] | None = None) -> None:
    """Mark rows suppressed: primary (fewer than `threshold` pupils described) and complementary
    (no margin group may hide exactly one row). `parents` maps a dimension to a function of its
    value that its margin groups stay within (school → district, venue → venue kind)."""
    primary, hidden = suppression(lambda: [tuple(r.key[d] for d in dims) for r in rows],
                                  [r.students for r in rows], [r.participating for r in rows], dims, threshold,
                                  parents)
    for row, is_primary, is_hidden in zip(rows, primary, hidden, strict=True):
        row.primary = is_primary
        row.suppressed = is_hidden


def suppression(values_of, students: list[int], participating: list[int], dims: list[str], threshold: int,
                parents: dict[str, dict] | None = None) -> tuple[list[bool], list[bool]]:
    """The rule of `suppress` on plain columns: row i has `students[i]`, `participating[i]` and the
    key values `values_of()[i]` (a tuple in `dims` order; asked for only when some row is primary).
    Returns (primary, suppressed) flags per row."""
    parents = parents or {}
    primary = [s < threshold or 0 < p < threshold for s, p in zip(students, participating, strict=True)]
    suppressed = list(primary)
    if len(primary) < 2 or not any(primary):
        return primary, suppressed
    values = values_of()
    groups: dict[tuple, list[int]] = defaultdict(list)
    membership: list[list[tuple]] = [[] for _ in primary]
    for i, vals in enumerate(values):
        for j, d in enumerate(dims):
            parent = parents.get(d)
            gkey = (j, vals[:j] + vals[j + 1:], parent.get(vals[j]) if parent is not None else None)
            groups[gkey].append(i)
            membership[i].append(gkey)
    # The complement of a group is its visible row with the fewest students, then fewest
    # participants, then the first key: members sorted once, a pointer walks past hidden ones.

    def rank(i: int):  # values of one dimension share a type, so key tuples compare
        return students[i], participating[i], values[i]

    hidden = {g: sum(suppressed[i] for i in members) for g, members in groups.items()}
    ordered: dict[tuple, list[int]] = {}
    cursor: dict[tuple, int] = {}
    queue = sorted((repr(g), g) for g, h in hidden.items() if h == 1)
    heapq.heapify(queue)
    while queue:
        _, g = heapq.heappop(queue)
        if hidden[g] != 1:
            continue
        members = ordered.get(g)
        if members is None:
            members = ordered[g] = sorted(groups[g], key=rank)
            cursor[g] = 0
        k = cursor[g]
        while k < len(members) and suppressed[members[k]]:
            k += 1
        cursor[g] = k
        if k == len(members):
            continue  # a group of one: its total is that row, hidden already
        pick = members[k]
        suppressed[pick] = True
        for g2 in membership[pick]:
            hidden[g2] += 1
            if hidden[g2] == 1:
                heapq.heappush(queue, (repr(g2), g2))
    return primary, suppressed


# ---------------------------------------------------------------------------------------------
# Credit statistics


# Schools and districts travel as plain tuples: exact tuples of numbers and strings are the objects
# the garbage collector stops tracking (result rows, ORM objects and named tuples it walks for good).
NAME, DISTRICT = 1, 2  # (id, name, district_id) of a school; (id, name) of a district


def _schools_in(scope: Scope) -> dict[int, tuple[int, str, int]]:
    """id → (id, name, district_id) of the schools in scope."""
    query = select(School.id, School.name, School.district_id)
    if scope.district_id is not None:
        query = query.where(School.district_id == scope.district_id)
    return {s[0]: tuple(s) for s in db.session.execute(query)}


def _districts() -> dict[int, tuple[int, str]]:
    return {d[0]: tuple(d) for d in db.session.execute(select(District.id, District.name))}


def _total(column):
    """SUM as a BIGINT (PostgreSQL sums integers as numeric, which Python would read as Decimal)."""
    return cast(func.sum(column), BigInteger)


def credit_grid(*, scope: Scope, school_year: str, dims: list[str], threshold: int | None = None,
                only: dict | None = None) -> tuple[list[GridRow], dict]:
    """The unsuppressed table of `dims` over the whole scope, from the roll-ups: the school-level
    table when the grid has a school dimension, else the district-level one (a hundred times smaller).

    With `only` ({dimension: value}) and `threshold`: when no row of the table falls under the
    threshold there is nothing to suppress or complement, so only the rows matching `only` are built
    (the common case at city scale); otherwise the whole table is, for suppress() to see every group.
    """
    cells, order, schools = credit_cells(scope=scope, school_year=school_year, dims=dims, threshold=threshold,
                                         only=only)
    n = len(order)
    return [GridRow(dict(zip(order, c[:n], strict=True)), *c[n:]) for c in cells], schools


def credit_cells(*, scope: Scope, school_year: str, dims: list[str], threshold: int | None = None,
                 only: dict | None = None) -> tuple[list[tuple], tuple[str, ...], dict]:
    """credit_grid as flat tuples: (cells, order, schools), each cell (*key values in `order`,
    students, participating, credits, met) — `order` is `dims` in DIMENSIONS order. Plain tuples of
    numbers and strings: a city's table of thousands of rows leaves nothing behind for the garbage
    collector to walk (objects per row made each whole-city export pay for full collections)."""
    pupil = [d for d in PUPIL_DIMS if d in dims]
    entry = [d for d in ("activity_kind", "venue_kind", "month") if d in dims]
    grain = sum(ENTRY_BITS[d] for d in entry)
    schools = _schools_in(scope)
    by_school = "school" in pupil
    by_district = "district" in pupil and not by_school
    by_grade = "grade" in pupil
    cells = (StatsCell if by_school else StatsDistrictCell).__table__.c
    pop = StatsPopulation.__table__.c
    sch = School.__table__.c
    in_scope = select(sch.id).where(sch.district_id == scope.district_id)

    # The population (a few thousand rows at most) per the grid's pupil key.
    pk_names = (["school_id"] if by_school else ["district_id"] if by_district else []) + (["grade"] if by_grade else [])
    pop_cols = ([pop.school_id] if by_school else [sch.district_id] if by_district else []) + ([pop.grade] if by_grade else [])
    population_query = select(*pop_cols, _total(pop.students).label("students"))
    if by_district:
        population_query = population_query.join_from(StatsPopulation.__table__, School.__table__,
                                                      sch.id == pop.school_id)
    if scope.district_id is not None:
        population_query = population_query.where(pop.school_id.in_(in_scope))
    if pop_cols:
        population_query = population_query.group_by(*pop_cols)

    key_cols = ([cells.school_id] if by_school else [cells.district_id] if by_district else []) + (
        [cells.grade] if by_grade else [])
    cell_query = (
        select(*key_cols, *(cells[d] for d in entry), _total(cells.participating).label("participating"),
               _total(cells.credits).label("credits"), _total(cells.met).label("met"))
        .where(cells.school_year == school_year, cells.grain == grain)
    )
    if scope.district_id is not None:
        cell_query = cell_query.where(
            cells.school_id.in_(in_scope) if by_school else cells.district_id == scope.district_id)
    if key_cols or entry:
        cell_query = cell_query.group_by(*key_cols, *(cells[d] for d in entry))

    # One statement: the population joined to its cells. Every pupil key with pupils is a row (zeros
    # where nobody earned anything) unless the grid splits entries: then the cells with pupils only.
    # (Cells without population cannot happen: both count exactly the same pupils.)
    p_, c_ = population_query.subquery("p"), cell_query.subquery("c")
    on = and_(*(p_.c[k] == c_.c[k] for k in pk_names)) if pk_names else true()
    joined = (
        select(*(p_.c[k] for k in pk_names), *(c_.c[d] for d in entry), p_.c.students,
               func.coalesce(c_.c.participating, 0), func.coalesce(c_.c.credits, 0),
               literal(0, BigInteger) if entry else func.coalesce(c_.c.met, 0))
        .select_from(p_.join(c_, on) if entry else p_.outerjoin(c_, on))
        .where(p_.c.students > 0)
    )

    key_names = (["school"] if by_school else ["district"] if by_district else []) + (["grade"] if by_grade else [])
    add_district = by_school and "district" in pupil
    district_of = {sid: school[DISTRICT] for sid, school in schools.items()} if by_school else {}
    order = (*(("district",) if add_district else ()), *key_names, *entry)
    # (*key values in order, students, participating, credits, met), read in slices (fetchmany): never
    # a whole table of result rows alive at once.
    rows = (r for part in db.session.connection().execute(joined).partitions(_PART) for r in part)
    if entry:
        rows = (r for r in rows if r[-3] or r[-2])  # entry rows only where the cell has credits or participants
    out = [(district_of.get(r[0]), *r) for r in rows] if add_district else [tuple(r) for r in rows]

    n = len(order)
    if only and threshold is not None and not any(
            c[n] < threshold or 0 < c[n + 1] < threshold for c in out):
        wanted = []
        for dim, value in only.items():
            if dim in order:
                wanted.append((order.index(dim), value))
            elif dim == "district" and by_school:
                wanted.append((order.index("school"), None, value))  # the school's district
        out = [c for c in out if all(
            (district_of.get(c[w[0]]) == w[2]) if len(w) == 3 else c[w[0]] == w[1] for w in wanted)]
    return out, order, schools


def credit_stats(*, user, school_year: str, group_by, district_id: int | None = None, school_id: int | None = None,
                 grade: int | None = None, raw: bool = False, as_tuples: bool = False) -> dict:
    """GET /api/v1/stats/credits: rows per group with students, participation, credits and met rate.

    ``raw=True`` (tests only) adds the unsuppressed numbers to each row under ``"_raw"``.
    ``as_tuples=True`` (spreadsheets): each item is a tuple of the values the row's dict would hold,
    in the order of the answer's ``"fields"`` — the same answer without a dict per row.
    """
    scope = Scope.of(user)
    check_school_year(school_year)
    dims = parse_group_by(group_by)
    filters = check_filters(scope, Filters(district_id, school_id, grade))
    rollup.refresh()

    grid_dims = list(dims)
    for dim, value in (("school", filters.school_id), ("grade", filters.grade), ("district", filters.district_id)):
        if value is not None and dim not in grid_dims and not (dim == "district" and "school" in grid_dims):
            grid_dims.append(dim)  # a school's district is implied: no separate dimension for it
    grid_dims = [d for d in DIMENSIONS if d in grid_dims]
    only = {d: v for d, v in (("district", filters.district_id), ("school", filters.school_id),
                              ("grade", filters.grade)) if v is not None}
    cells, order, schools = credit_cells(scope=_grid_scope(scope, grid_dims, filters), school_year=school_year,
                                         dims=grid_dims, threshold=min_cell(), only=only)
    n = len(grid_dims)
    if list(order) != grid_dims:  # (credit_cells keeps DIMENSIONS order: never the case)
        move = [order.index(d) for d in grid_dims]
        cells = [(*(c[i] for i in move), *c[n:]) for c in cells]
    district_of = {sid: s[DISTRICT] for sid, s in schools.items()}
    primary, hidden = suppression(lambda: [c[:n] for c in cells], [c[n] for c in cells], [c[n + 1] for c in cells],
                                  grid_dims, min_cell(), {"school": district_of})

    # The filters, on the table suppressed as a whole.
    position = {d: i for i, d in enumerate(grid_dims)}
    tests = []
    if filters.school_id is not None:
        tests.append((position.get("school"), filters.school_id))
    if filters.grade is not None:
        tests.append((position.get("grade"), filters.grade))
    kept = range(len(cells))
    if tests:
        kept = [i for i in kept if all(cells[i][p] == v if p is not None else v is None for p, v in tests)]
    if filters.district_id is not None:
        at, at_school = position.get("district"), position.get("school")
        kept = [i for i in kept if (cells[i][at] if at is not None else
                                    district_of.get(cells[i][at_school]) if at_school is not None else None)
                == filters.district_id]

    entry_split = any(d in ENTRY_BITS for d in dims)
    fields, build = _credit_item_maker(dims, grid_dims, schools, _districts(), entry_split)
    order_key = _row_order_key(dims, grid_dims)
    ranked = sorted(kept, key=lambda i: order_key(cells[i]))
    items = build([cells[i] for i in ranked], [hidden[i] for i in ranked])
    if raw:
        items = [{**dict(zip(fields, item, strict=True)), "_raw": _raw_numbers(cells[i], n, entry_split, primary[i])}
                 for item, i in zip(items, ranked, strict=True)]
    elif not as_tuples:
        items = [dict(zip(fields, item, strict=True)) for item in items]
    from app.credits.service import active_rules

    answer = {
        "school_year": school_year,
        "group_by": dims,
        "filters": {"district_id": filters.district_id, "school_id": filters.school_id, "grade": filters.grade},
        "rule_version": active_rules().version,
        "min_cell": min_cell(),
        "items": items,
    }
    if as_tuples and not raw:
        answer["fields"] = fields
    return answer


def _grid_scope(scope: Scope, grid_dims: list[str], filters: Filters) -> Scope:
    """Where the table must be computed for a consistent answer: a table with a school dimension can
    be computed within the filtered school's (or district's) district alone — every margin group of
    a school's row stays inside its district — otherwise over the caller's whole scope."""
    if "school" in grid_dims:
        if filters.school_id is not None:
            return Scope(db.session.get(School, filters.school_id).district_id)
        if filters.district_id is not None:
            return Scope(filters.district_id)
    return scope


def _row_order(row: GridRow, dims: list[str]):
    """Districts, schools, grades by id; kinds in the rule book's order; months in time order."""
    key = row.key
    return tuple(KIND_ORDER.get(key[d], 99) if d == "activity_kind" else
                 VENUE_ORDER.get(key[d], 99) if d == "venue_kind" else key[d] for d in dims)


def _row_order_key(dims: list[str], grid_dims: list[str]):
    """_row_order for a flat cell whose key values are in `grid_dims` order."""
    steps = [(grid_dims.index(d), KIND_ORDER if d == "activity_kind" else VENUE_ORDER if d == "venue_kind" else None)
             for d in dims]
    if all(table is None for _, table in steps):
        return itemgetter(*[i for i, _ in steps]) if len(steps) > 1 else (lambda c, i=steps[0][0]: (c[i],))
    return lambda c: tuple(table.get(c[i], 99) if table is not None else c[i] for i, table in steps)


def fmt_cents(cents: int) -> str:
    """Integer cents on the wire: 12345 → "123.45", -5 → "-0.05"."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def div_half_up(a: int, b: int) -> int:
    """a / b rounded half away from zero (Decimal's ROUND_HALF_UP), in integers; b > 0."""
    q = (2 * abs(a) + b) // (2 * b)
    return -q if a < 0 else q


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def dimension_label(dim: str, value, schools: dict[int, tuple], districts: dict[int, tuple]) -> str:
    if dim == "district":
        district = districts.get(value)
        return district[NAME] if district else f"区 {value}"
    if dim == "school":
        school = schools.get(value)
        return school[NAME] if school else f"学校 {value}"
    if dim == "grade":
        return GRADE_LABELS.get(value, f"{value}年级")
    if dim == "activity_kind":
        return KIND_LABELS.get(value, value)
    if dim == "venue_kind":
        return VENUE_LABELS.get(value, value)
    return str(value)


_NUMBERS = ("students", "participating", "participation_rate", "credits_total", "credits_mean", "met_rate")
_HIDDEN = dict.fromkeys(_NUMBERS)


def _raw_numbers(cell: tuple, n: int, entry_split: bool, primary: bool) -> dict:
    students, participating, credits, met = cell[n:]
    return {
        "students": students, "participating": participating,
        "participation_rate": _rate(participating, students), "credits_total": fmt_cents(credits),
        "credits_mean": fmt_cents(div_half_up(credits, students)) if students else None,
        "met_rate": None if entry_split else _rate(met, students),
        "credits_cents": credits, "met": met, "primary": primary,
    }


class _Labels(dict):
    """value → label of one dimension, computed on first use (a plain dict lookup after that)."""

    def __init__(self, compute):
        super().__init__()
        self.compute = compute

    def __missing__(self, value):
        text = self[value] = self.compute(value)
        return text


def _credit_item_maker(dims: list[str], grid_dims: list[str], schools, districts, entry_split: bool):
    """(fields, build): build(cells, hidden) turns flat cells (key values in `grid_dims` order, then
    students, participating, credits, met) and their suppressed flags into answer rows, tuples of
    `fields` — keys, label, numbers or nulls, suppressed. A city is thousands of rows, so the loop is
    written out: no call per value (fmt_cents, div_half_up and _rate inlined for the usual
    non-negative credits; the functions themselves otherwise)."""
    wire = {"district": "district_id", "school": "school_id"}
    district_of_school = "school" in dims and "district" not in dims
    fields = (*(wire.get(d, d) for d in dims), *(("district_id",) if district_of_school else ()), "label",
              *_NUMBERS, "suppressed")
    at = [grid_dims.index(d) for d in dims]
    n = len(grid_dims)
    la, lb = (_Labels(lambda value, d=d: dimension_label(d, value, schools, districts)) for d in (*dims, dims[0])[:2])
    two = len(dims) == 2
    i0, i1 = at[0], at[-1]
    i_school = grid_dims.index("school") if district_of_school else 0
    district_of = {sid: school[DISTRICT] for sid, school in schools.items()}.get
    hidden_numbers = (None,) * len(_NUMBERS)

    def build(cells, hidden) -> list[tuple]:
        rows = []
        append = rows.append
        for cell, suppressed in zip(cells, hidden, strict=True):
            v0 = cell[i0]
            if two:
                v1 = cell[i1]
                head = (v0, v1, district_of(cell[i_school])) if district_of_school else (v0, v1)
                text = f"{la[v0]} / {lb[v1]}"  # " / ".join of the two labels
            else:
                head = (v0, district_of(cell[i_school])) if district_of_school else (v0,)
                text = la[v0]
            if suppressed:
                append((*head, text, *hidden_numbers, True))
                continue
            students, participating, credits, met = cell[n:]
            if not students:
                append((*head, text, students, participating, None, fmt_cents(credits), None, None, False))
                continue
            if credits >= 0:
                total = f"{credits // 100}.{credits % 100:02d}"
                mean = (2 * credits + students) // (2 * students)
                mean = f"{mean // 100}.{mean % 100:02d}"
            else:
                total, mean = fmt_cents(credits), fmt_cents(div_half_up(credits, students))
            append((*head, text, students, participating, round(participating / students, 4), total, mean,
                    None if entry_split else round(met / students, 4), False))
        return rows

    return fields, build


# ---------------------------------------------------------------------------------------------
# Venue activity index (科普活动指数)


def venue_grid(*, scope: Scope, school_year: str, by_month: bool, pupil_dim: str | None) -> tuple[list[GridRow], dict]:
    """Per venue (and month, and the pupils' district or school when filtered), from the roll-ups:
    the district-level table, or the school-level one when split by school."""
    cells, names = venue_cells(scope=scope, school_year=school_year, by_month=by_month, pupil_dim=pupil_dim)
    n = len(names)
    return [GridRow(dict(zip(names, c[:n], strict=True)), c[n], c[n], c[n + 1], 0,
                    extra={"checkins": c[n + 2], "schools": c[n + 3], "districts": c[n + 4]}) for c in cells], {}


def venue_cells(*, scope: Scope, school_year: str, by_month: bool, pupil_dim: str | None) -> tuple[list[tuple], tuple]:
    """venue_grid as flat tuples: (cells, names), each cell (*key values in `names` order — venue,
    month, the pupil dimension —, students, credits, checkins, schools, districts)."""
    per_school = pupil_dim == "school"
    t = (StatsVenueCell if per_school else StatsVenueDistrict).__table__.c
    sch = School.__table__.c
    cols = [t.venue_id, *([t.month] if by_month else [])]
    if per_school:
        cols.append(t.school_id)
        reached_schools = func.count(case((t.students > 0, 1)))
        reached_districts = func.count(func.distinct(case((t.students > 0, sch.district_id))))
    else:
        if pupil_dim == "district":
            cols.append(t.district_id)
        reached_schools = _total(t.schools)
        reached_districts = func.count(case((t.students > 0, 1)))
    query = (
        select(*cols, _total(t.students), _total(t.checkins), _total(t.credits), reached_schools,
               reached_districts)
        .where(t.school_year == school_year, t.month != rollup.ALL if by_month else t.month == rollup.ALL)
        .group_by(*cols)
    )
    if per_school:
        query = query.join_from(StatsVenueCell.__table__, School.__table__, sch.id == t.school_id)
        if scope.district_id is not None:
            query = query.where(sch.district_id == scope.district_id)
    elif scope.district_id is not None:
        query = query.where(t.district_id == scope.district_id)
    names = ("venue", *(("month",) if by_month else ()), *((pupil_dim,) if pupil_dim else ()))
    n = len(names)
    cells = []
    for part in db.session.connection().execute(query).partitions(_PART):
        for r in part:
            students, checkins, credits, reached, districts = r[n:]
            students, checkins, credits = int(students or 0), int(checkins or 0), int(credits or 0)
            if not (students or checkins or credits):
                continue
            cells.append((*r[:n], students, credits, checkins, int(reached or 0), int(districts or 0)))
    return cells, names


VENUE_FIELDS = ("venue_id", "name", "kind", "level", "district_id")
VENUE_NUMBERS = ("checkins", "students", "schools", "districts", "credits")


def venue_stats(*, user, school_year: str, group_by=None, district_id: int | None = None,
                school_id: int | None = None, raw: bool = False, as_tuples: bool = False) -> dict:
    """GET /api/v1/stats/venues: per venue, check-ins, pupils, schools and districts reached, credits.

    ``as_tuples=True`` (spreadsheets): each item is a tuple of the values its dict would hold, in
    the order of the answer's ``"fields"``.
    """
    scope = Scope.of(user)
    check_school_year(school_year)
    dims = parse_group_by(group_by, allowed=("month",), max_dims=1) if group_by else []
    filters = check_filters(scope, Filters(district_id, school_id, None))
    rollup.refresh()
    by_month = "month" in dims
    pupil_dim = "school" if filters.school_id is not None else "district" if filters.district_id is not None else None
    grid_scope = scope
    if pupil_dim == "school":  # a school's rows only share margins with schools of its own district
        grid_scope = Scope(db.session.get(School, filters.school_id).district_id)
    cells, names = venue_cells(scope=grid_scope, school_year=school_year, by_month=by_month, pupil_dim=pupil_dim)
    n = len(names)
    venues = {v.id: v for v in db.session.execute(
        select(Venue.id, Venue.name, Venue.kind, Venue.level, Venue.district_id, Venue.active))}
    grid_dims = list(names)  # venue, month, the pupil dimension: the key order of the cells
    parents = {"venue": {vid: v.kind for vid, v in venues.items()}}
    if pupil_dim == "school":
        parents["school"] = {sid: s[DISTRICT] for sid, s in _schools_in(grid_scope).items()}
    # Venues reach pupils, not the other way round: a venue's row "participants" are its pupils.
    students = [c[n] for c in cells]
    primary, hidden = suppression(lambda: [c[:n] for c in cells], students, students, grid_dims, min_cell(), parents)
    rows = list(zip(cells, hidden, primary, strict=True))
    if pupil_dim is not None:
        wanted = filters.school_id if pupil_dim == "school" else filters.district_id
        rows = [r for r in rows if r[0][n - 1] == wanted]
    if not by_month:
        present = {r[0][0] for r in rows}
        for vid, venue in venues.items():
            if vid not in present and venue.active:
                rows.append(((vid, *((None,) if pupil_dim else ()), 0, 0, 0, 0, 0), False, False))
    rows.sort(key=(lambda r: (r[0][0], r[0][1])) if by_month else (lambda r: (r[0][0], "")))
    fields = (*VENUE_FIELDS, *(("month",) if by_month else ()), "label", *VENUE_NUMBERS, "suppressed")
    nothing = (None,) * len(VENUE_FIELDS)
    hidden_numbers = (None,) * len(VENUE_NUMBERS)
    items = []
    for cell, is_hidden, is_primary in rows:
        vid = cell[0]
        venue = venues.get(vid)
        head = (vid, venue.name, venue.kind, venue.level, venue.district_id) if venue else (vid, *nothing[1:])
        if by_month:
            head += (cell[1],)
            label = f"{venue.name} / {cell[1]}" if venue else str(vid)
        else:
            label = venue.name if venue else str(vid)
        students_, credits, checkins, schools_, districts_ = cell[n:]
        numbers = (checkins, students_, schools_, districts_, fmt_cents(credits))
        item = (*head, label, *(hidden_numbers if is_hidden else numbers), is_hidden)
        if raw:
            item = {**dict(zip(fields, item, strict=True)),
                    "_raw": {**dict(zip(VENUE_NUMBERS, numbers, strict=True)), "credits_cents": credits,
                             "primary": is_primary}}
        elif not as_tuples:
            item = dict(zip(fields, item, strict=True))
        items.append(item)
    answer = {
        "school_year": school_year,
        "group_by": dims,
        "filters": {"district_id": filters.district_id, "school_id": filters.school_id},
        "min_cell": min_cell(),
        "items": items,
    }
    if as_tuples and not raw:
        answer["fields"] = fields
    return answer
