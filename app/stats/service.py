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

from flask import current_app, has_app_context
from sqlalchemy import BigInteger, case, cast, func, select

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
    parents = parents or {}
    for row in rows:
        row.primary = row.students < threshold or 0 < row.participating < threshold
        row.suppressed = row.primary
    if len(rows) < 2 or not any(r.primary for r in rows):
        return
    values = [tuple(r.key[d] for d in dims) for r in rows]
    groups: dict[tuple, list[int]] = defaultdict(list)
    membership: list[list[tuple]] = [[] for _ in rows]
    for i, vals in enumerate(values):
        for j, d in enumerate(dims):
            parent = parents.get(d)
            gkey = (j, vals[:j] + vals[j + 1:], parent.get(vals[j]) if parent is not None else None)
            groups[gkey].append(i)
            membership[i].append(gkey)
    # The complement of a group is its visible row with the fewest students, then fewest
    # participants, then the first key: members sorted once, a pointer walks past hidden ones.

    def rank(i: int):  # values of one dimension share a type, so key tuples compare
        return rows[i].students, rows[i].participating, values[i]

    hidden = {g: sum(rows[i].suppressed for i in members) for g, members in groups.items()}
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
        while k < len(members) and rows[members[k]].suppressed:
            k += 1
        cursor[g] = k
        if k == len(members):
            continue  # a group of one: its total is that row, hidden already
        pick = members[k]
        rows[pick].suppressed = True
        for g2 in membership[pick]:
            hidden[g2] += 1
            if hidden[g2] == 1:
                heapq.heappush(queue, (repr(g2), g2))


# ---------------------------------------------------------------------------------------------
# Credit statistics


def _schools_in(scope: Scope) -> dict[int, School]:
    """id → (id, name, district_id) rows of the schools in scope (plain rows, not ORM objects)."""
    query = select(School.id, School.name, School.district_id)
    if scope.district_id is not None:
        query = query.where(School.district_id == scope.district_id)
    return {s.id: s for s in db.session.execute(query)}


def _districts() -> dict[int, District]:
    return {d.id: d for d in db.session.execute(select(District.id, District.name))}


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
    pop_cols = ([pop.school_id] if by_school else [sch.district_id] if by_district else []) + ([pop.grade] if by_grade else [])
    population_query = select(*pop_cols, _total(pop.students))
    if by_district:
        population_query = population_query.join_from(StatsPopulation.__table__, School.__table__,
                                                      sch.id == pop.school_id)
    if scope.district_id is not None:
        population_query = population_query.where(pop.school_id.in_(in_scope))
    if pop_cols:
        population_query = population_query.group_by(*pop_cols)
    connection = db.session.connection()
    population = {r[:-1]: int(r[-1]) for r in connection.execute(population_query).all() if r[-1]}

    key_cols = ([cells.school_id] if by_school else [cells.district_id] if by_district else []) + (
        [cells.grade] if by_grade else [])
    cell_query = (
        select(*key_cols, *(cells[d] for d in entry), _total(cells.participating), _total(cells.credits),
               _total(cells.met))
        .where(cells.school_year == school_year, cells.grain == grain)
    )
    if scope.district_id is not None:
        cell_query = cell_query.where(
            cells.school_id.in_(in_scope) if by_school else cells.district_id == scope.district_id)
    if key_cols or entry:
        cell_query = cell_query.group_by(*key_cols, *(cells[d] for d in entry))
    npk = len(key_cols)

    key_names = (["school"] if by_school else ["district"] if by_district else []) + (["grade"] if by_grade else [])
    add_district = by_school and "district" in pupil
    district_of = {sid: school.district_id for sid, school in schools.items()} if by_school else {}
    names = (*key_names, *entry)
    raw = []  # (values, students, participating, credits, met)
    seen: set[tuple] = set()
    for r in connection.execute(cell_query).all():
        pk = r[:npk]
        students = population.get(pk)
        if not students:
            continue  # (cannot happen: cells count exactly the pupils the population counts)
        participating, credits, met = int(r[-3] or 0), int(r[-2] or 0), int(r[-1] or 0)
        if entry and not participating and not credits:
            continue
        raw.append((r[:-3], students, participating, credits, 0 if entry else met))
        seen.add(pk)
    if not entry:
        raw.extend((pk, students, 0, 0, 0) for pk, students in population.items() if pk not in seen)

    if only and threshold is not None and not any(s < threshold or 0 < p < threshold for _, s, p, _, _ in raw):
        wanted = []
        for dim, value in only.items():
            if dim in names:
                wanted.append((names.index(dim), value))
            elif dim == "district" and by_school:
                wanted.append((0, None, value))  # the school's district
        raw = [t for t in raw if all(
            (district_of.get(t[0][0]) == w[2]) if len(w) == 3 else t[0][w[0]] == w[1] for w in wanted)]

    rows = []
    for values, students, participating, credits, met in raw:
        key = dict(zip(names, values, strict=True))
        if add_district:
            key["district"] = district_of.get(values[0])
        rows.append(GridRow(key, students, participating, credits, met))
    return rows, schools


def credit_stats(*, user, school_year: str, group_by, district_id: int | None = None, school_id: int | None = None,
                 grade: int | None = None, raw: bool = False) -> dict:
    """GET /api/v1/stats/credits: rows per group with students, participation, credits and met rate.

    ``raw=True`` (tests only) adds the unsuppressed numbers to each row under ``"_raw"``.
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
    rows, schools = credit_grid(scope=_grid_scope(scope, grid_dims, filters), school_year=school_year, dims=grid_dims,
                                threshold=min_cell(), only=only)
    district_of = {sid: s.district_id for sid, s in schools.items()}
    suppress(rows, grid_dims, min_cell(), {"school": district_of})

    def keep(row: GridRow) -> bool:
        key = row.key
        if filters.school_id is not None and key.get("school") != filters.school_id:
            return False
        if filters.grade is not None and key.get("grade") != filters.grade:
            return False
        if filters.district_id is not None:
            district = key.get("district", district_of.get(key.get("school")))
            if district != filters.district_id:
                return False
        return True

    entry_split = any(d in ENTRY_BITS for d in dims)
    districts = _districts()
    make_item = _credit_item_maker(dims, schools, districts, entry_split, raw)
    items = [make_item(row) for row in sorted((r for r in rows if keep(r)), key=lambda r: _row_order(r, dims))]
    from app.credits.service import active_rules

    return {
        "school_year": school_year,
        "group_by": dims,
        "filters": {"district_id": filters.district_id, "school_id": filters.school_id, "grade": filters.grade},
        "rule_version": active_rules().version,
        "min_cell": min_cell(),
        "items": items,
    }


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


def dimension_label(dim: str, value, schools: dict[int, School], districts: dict[int, District]) -> str:
    if dim == "district":
        district = districts.get(value)
        return district.name if district else f"区 {value}"
    if dim == "school":
        school = schools.get(value)
        return school.name if school else f"学校 {value}"
    if dim == "grade":
        return GRADE_LABELS.get(value, f"{value}年级")
    if dim == "activity_kind":
        return KIND_LABELS.get(value, value)
    if dim == "venue_kind":
        return VENUE_LABELS.get(value, value)
    return str(value)


_NUMBERS = ("students", "participating", "participation_rate", "credits_total", "credits_mean", "met_rate")
_HIDDEN = dict.fromkeys(_NUMBERS)


def _credit_item_maker(dims: list[str], schools, districts, entry_split: bool, raw: bool):
    """A function turning a GridRow into its answer row (keys, label, numbers or nulls)."""
    wire = {"district": "district_id", "school": "school_id"}
    fields = [(d, wire.get(d, d)) for d in dims]
    district_of_school = "school" in dims and "district" not in dims
    labels: dict[str, dict] = {d: {} for d in dims}

    def label(d, value):
        cache = labels[d]
        text = cache.get(value)
        if text is None:
            text = cache[value] = dimension_label(d, value, schools, districts)
        return text

    def make(row: GridRow) -> dict:
        key = row.key
        item = {name: key[d] for d, name in fields}
        if district_of_school:
            school = schools.get(key["school"])
            item["district_id"] = school.district_id if school else None
        item["label"] = " / ".join([label(d, key[d]) for d in dims])
        students = row.students
        if row.suppressed:
            item.update(_HIDDEN)
        else:
            item["students"] = students
            item["participating"] = row.participating
            item["participation_rate"] = _rate(row.participating, students)
            item["credits_total"] = fmt_cents(row.credits)
            item["credits_mean"] = fmt_cents(div_half_up(row.credits, students)) if students else None
            item["met_rate"] = None if entry_split else _rate(row.met, students)
        item["suppressed"] = row.suppressed
        if raw:
            item["_raw"] = {
                "students": students, "participating": row.participating,
                "participation_rate": _rate(row.participating, students), "credits_total": fmt_cents(row.credits),
                "credits_mean": fmt_cents(div_half_up(row.credits, students)) if students else None,
                "met_rate": None if entry_split else _rate(row.met, students),
                "credits_cents": row.credits, "met": row.met, "primary": row.primary,
            }
        return item

    return make


# ---------------------------------------------------------------------------------------------
# Venue activity index (科普活动指数)


def venue_grid(*, scope: Scope, school_year: str, by_month: bool, pupil_dim: str | None) -> tuple[list[GridRow], dict]:
    """Per venue (and month, and the pupils' district or school when filtered), from the roll-ups:
    the district-level table, or the school-level one when split by school."""
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
    rows = []
    for r in db.session.connection().execute(query).all():
        students, checkins, credits, reached, districts = r[n:]
        students, checkins, credits = int(students or 0), int(checkins or 0), int(credits or 0)
        if not (students or checkins or credits):
            continue
        rows.append(GridRow(dict(zip(names, r[:n], strict=True)), students, students, credits, 0,
                            extra={"checkins": checkins, "schools": int(reached or 0), "districts": int(districts or 0)}))
    return rows, {}


def venue_stats(*, user, school_year: str, group_by=None, district_id: int | None = None,
                school_id: int | None = None, raw: bool = False) -> dict:
    """GET /api/v1/stats/venues: per venue, check-ins, pupils, schools and districts reached, credits."""
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
    rows, _ = venue_grid(scope=grid_scope, school_year=school_year, by_month=by_month, pupil_dim=pupil_dim)
    venues = {v.id: v for v in db.session.execute(
        select(Venue.id, Venue.name, Venue.kind, Venue.level, Venue.district_id, Venue.active))}
    grid_dims = ["venue", *(["month"] if by_month else []), *([pupil_dim] if pupil_dim else [])]
    parents = {"venue": {vid: v.kind for vid, v in venues.items()}}
    if pupil_dim == "school":
        parents["school"] = {s.id: s.district_id for s in _schools_in(grid_scope).values()}
    # Venues reach pupils, not the other way round: a venue's row "participants" are its pupils.
    suppress(rows, grid_dims, min_cell(), parents)
    if pupil_dim is not None:
        wanted = filters.school_id if pupil_dim == "school" else filters.district_id
        rows = [r for r in rows if r.key[pupil_dim] == wanted]
    present = {r.key["venue"] for r in rows}
    if not by_month:
        for vid, venue in venues.items():
            if vid not in present and venue.active:
                rows.append(GridRow({"venue": vid}, 0, 0, 0, 0, extra={"checkins": 0, "schools": 0, "districts": 0}))
    rows.sort(key=lambda r: (r.key["venue"], r.key.get("month", "")))
    items = []
    for row in rows:
        venue = venues.get(row.key["venue"])
        item = {
            "venue_id": row.key["venue"],
            "name": venue.name if venue else None,
            "kind": venue.kind if venue else None,
            "level": venue.level if venue else None,
            "district_id": venue.district_id if venue else None,
        }
        if by_month:
            item["month"] = row.key["month"]
        item["label"] = item["name"] + (f" / {row.key['month']}" if by_month else "") if venue else str(row.key["venue"])
        numbers = {
            "checkins": row.extra["checkins"],
            "students": row.students,
            "schools": row.extra["schools"],
            "districts": row.extra["districts"],
            "credits": fmt_cents(row.credits),
        }
        item.update({k: None for k in numbers} if row.suppressed else numbers)
        item["suppressed"] = row.suppressed
        if raw:
            item["_raw"] = {**numbers, "credits_cents": row.credits, "primary": row.primary}
        items.append(item)
    return {
        "school_year": school_year,
        "group_by": dims,
        "filters": {"district_id": filters.district_id, "school_id": filters.school_id},
        "min_cell": min_cell(),
        "items": items,
    }
