"""Small-cell suppression and the differencing guard: unit rules, a property over random tables,
and through the API (a hidden school cannot be recovered from the district total)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from app.credits import ledger
from app.stats.service import GridRow, suppress
from tests import factories as f

YEAR = "2026-2027"
T0 = datetime(2026, 10, 12, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, October 2026


def row(students, participating, **key):
    return GridRow(key, students, participating, credits=participating * 100)


def hidden(rows):
    return [r.key for r in rows if r.suppressed]


# --- the rules on small tables ----------------------------------------------------------------


def test_primary_rule_fewer_than_five_pupils_or_one_to_four_participants():
    rows = [row(4, 0, school=1), row(30, 3, school=2), row(30, 0, school=3), row(30, 5, school=4), row(5, 5, school=5)]
    suppress(rows, ["school"], 5)
    assert [r.primary for r in rows] == [True, True, False, False, False]


def test_a_lone_hidden_row_gets_a_complement_the_smallest_other_row():
    rows = [row(3, 3, school=1), row(40, 20, school=2), row(25, 10, school=3), row(60, 30, school=4)]
    suppress(rows, ["school"], 5)
    assert hidden(rows) == [{"school": 1}, {"school": 3}]
    assert not rows[2].primary  # hidden only to protect school 1


def test_two_hidden_rows_need_no_complement():
    rows = [row(3, 3, school=1), row(2, 1, school=2), row(25, 10, school=3)]
    suppress(rows, ["school"], 5)
    assert hidden(rows) == [{"school": 1}, {"school": 2}]


def test_a_single_row_group_cannot_be_differenced_and_is_left_alone():
    rows = [row(3, 3, school=1)]
    suppress(rows, ["school"], 5)
    assert hidden(rows) == [{"school": 1}]


def test_schools_are_guarded_within_their_district():
    # District 1: one small school → a second one of district 1 is hidden, not one of district 2.
    rows = [row(3, 3, school=1), row(50, 20, school=2), row(9, 9, school=3), row(8, 8, school=4)]
    suppress(rows, ["school"], 5, {"school": {1: 1, 2: 1, 3: 2, 4: 2}})
    assert hidden(rows) == [{"school": 1}, {"school": 2}]


def test_two_dimensions_cascade_until_no_margin_hides_exactly_one():
    # school × grade; (1, 5) is small. Its school margin and its grade margin each need a second
    # hidden cell, and those complements create new lone cells that need theirs.
    cells = {(1, 3): (30, 10), (1, 5): (3, 3), (2, 3): (40, 20), (2, 5): (35, 15), (3, 3): (50, 25), (3, 5): (45, 20)}
    rows = [row(s, p, school=k[0], grade=k[1]) for k, (s, p) in cells.items()]
    suppress(rows, ["school", "grade"], 5)
    assert_guarded(rows, ["school", "grade"])
    assert {(r.key["school"], r.key["grade"]) for r in rows if r.suppressed} == {(1, 3), (1, 5), (2, 3), (2, 5)}


def assert_guarded(rows, dims, parents=None):
    parents = parents or {}
    for d in dims:
        groups = defaultdict(list)
        for r in rows:
            rest = tuple((o, r.key[o]) for o in dims if o != d)
            groups[(rest, parents.get(d, {}).get(r.key[d]))].append(r)
        for members in groups.values():
            n = sum(r.suppressed for r in members)
            assert n != 1 or len(members) == 1, [(r.key, r.suppressed) for r in members]


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(
    st.tuples(st.integers(1, 6), st.integers(1, 4)),
    st.tuples(st.integers(0, 40), st.integers(0, 40)),
    min_size=1, max_size=24,
))
def test_no_margin_group_ever_hides_exactly_one_row(cells):
    rows = [row(s, min(p, s), school=k[0], grade=k[1]) for k, (s, p) in cells.items()]
    district = {school: 1 + school % 2 for school in range(1, 7)}
    suppress(rows, ["school", "grade"], 5, {"school": district})
    assert_guarded(rows, ["school", "grade"], {"school": district})
    for r in rows:
        if r.students < 5 or 0 < r.participating < 5:
            assert r.suppressed


# --- through the API ---------------------------------------------------------------------------


def credit(pupil, amount, venue=None, kind="visit", at=T0):
    if venue is None:
        venue = f.venue(kind="science_museum")
    return ledger.append(student_id=pupil.id, kind="credit", amount=Decimal(amount), source="checkin",
                         activity_kind=kind, venue_id=venue.id, occurred_at=at, rule_version="sz-2025",
                         explanation={"summary": "test"})


def city(sizes, db_session):
    """One district with schools of the given sizes (grade 5); every pupil earns 1.00 at one venue."""
    district = f.district("罗湖区")
    venue = f.venue(district, kind="science_museum")
    schools = []
    for size in sizes:
        school = f.school(district)
        klass = f.school_class(school, grade=5)
        for _ in range(size):
            credit(f.student(klass), "1.00", venue)
        schools.append(school)
    db_session.commit()
    return district, schools


def get(client, user, **query):
    query.setdefault("school_year", YEAR)
    response = client.get("/api/v1/stats/credits", query_string=query, headers=f.bearer(user))
    assert response.status_code == 200, response.json
    return response.json


def test_a_small_school_is_hidden_and_cannot_be_recovered_from_the_district_total(client, db_session):
    district, schools = city([3, 12, 7, 20], db_session)
    officer = f.user("district_officer", district_=district)
    db_session.commit()
    by_school = get(client, officer, group_by="school")["items"]
    rows = {r["school_id"]: r for r in by_school}
    assert rows[schools[0].id]["suppressed"] and rows[schools[0].id]["students"] is None
    assert rows[schools[0].id]["credits_total"] is None and rows[schools[0].id]["met_rate"] is None
    assert rows[schools[0].id]["label"] == schools[0].name  # the row stays, named, without numbers
    hidden_ids = {sid for sid, r in rows.items() if r["suppressed"]}
    assert hidden_ids == {schools[0].id, schools[2].id}  # the smallest other school protects it
    total = get(client, officer, group_by="district")["items"][0]
    assert total["students"] == 42 and not total["suppressed"]
    visible = sum(r["students"] for r in by_school if not r["suppressed"])
    assert total["students"] - visible == 3 + 7  # only the sum of two hidden schools is learnt


def test_a_filter_hides_exactly_what_the_full_table_hides(client, db_session):
    district, schools = city([3, 12, 7, 20], db_session)
    officer = f.user("district_officer", district_=district)
    db_session.commit()
    full = {(r["school_id"], r["grade"]): r["suppressed"]
            for r in get(client, officer, group_by="school,grade")["items"]}
    sliced = get(client, officer, group_by="school", grade=5)["items"]
    assert {(r["school_id"], 5): r["suppressed"] for r in sliced} == full
    one = get(client, officer, group_by="grade", school_id=schools[2].id)["items"]
    assert one == [{**one[0], "suppressed": True}] and one[0]["students"] is None  # the complement stays hidden


def test_entry_rows_with_one_to_four_participants_are_hidden(client, db_session):
    district, schools = city([30], db_session)
    pupil = f.student(f.school_class(schools[0], grade=5))
    credit(pupil, "2.00", kind="research")
    officer = f.user("district_officer", district_=district)
    db_session.commit()
    rows = {r["activity_kind"]: r for r in get(client, officer, group_by="activity_kind")["items"]}
    assert rows["research"]["suppressed"] and rows["research"]["participating"] is None
    assert rows["visit"]["suppressed"]  # the complement: else visit = year total − research
    assert rows["visit"]["label"] == "参观"


def test_without_small_cells_a_filtered_answer_is_the_slice_of_the_full_table(client, db_session):
    """The fast path (nothing under the threshold: only the slice is built) answers like the full table."""
    district, schools = city([6, 9, 12], db_session)
    for school in schools:
        for _ in range(6):
            credit(f.student(f.school_class(school, grade=3)), "0.50")
    officer = f.user("city_officer")
    db_session.commit()
    full = get(client, officer, group_by="school,grade", district_id=district.id)["items"]
    assert not any(r["suppressed"] for r in full)
    sliced = get(client, officer, group_by="school", grade=3, district_id=district.id)["items"]
    assert [{k: v for k, v in r.items() if k not in ("label", "grade")} for r in full if r["grade"] == 3] == \
        [{k: v for k, v in r.items() if k != "label"} for r in sliced]
    one = get(client, officer, group_by="grade", school_id=schools[1].id)["items"]
    assert [(r["grade"], r["students"]) for r in one] == [(3, 6), (5, 9)]
