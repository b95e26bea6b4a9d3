"""The spreadsheet path (answer rows as tuples, no dict per row) says exactly what the JSON path says,
and the flat tables the answers are built from equal credit_grid / venue_grid with suppress() — on a
district with many small cells, so that primary and complementary suppression both happen."""

from __future__ import annotations

import io
import itertools
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from app.credits import ledger
from app.stats import export, rollup, service
from tests import factories as f

YEAR = "2026-2027"
T0 = datetime(2026, 10, 12, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, October 2026
KINDS = ("visit", "lecture", "workshop", "research", "volunteer")


@pytest.fixture
def patchy(db_session):
    """Two districts, five schools of uneven sizes over grades 3, 5 and 8, pupils crediting 0–3 stays
    of random kinds at four venues over three months (seeded): plenty of cells under five."""
    rng = random.Random(20261012)
    districts = [f.district("福田区"), f.district("南山区")]
    venues = [f.venue(districts[i % 2], kind=kind, name=f"场馆{i}")
              for i, kind in enumerate(("science_museum", "museum", "science_base", "campus"))]
    schools = []
    for i, sizes in enumerate(((9, 3, 14), (2, 7, 0), (12, 12, 4), (6, 1, 8), (20, 5, 3))):
        school = f.school(districts[i % 2], name=f"学校{i}")
        schools.append(school)
        for grade, size in zip((3, 5, 8), sizes, strict=True):
            if not size:
                continue
            klass = f.school_class(school, grade=grade)
            for _ in range(size):
                pupil = f.student(klass)
                for _ in range(rng.choice((0, 1, 1, 2, 3))):
                    ledger.append(student_id=pupil.id, kind="credit", amount=Decimal(rng.choice(("0.50", "1.00", "1.50"))),
                                  source="checkin", activity_kind=rng.choice(KINDS), venue_id=rng.choice(venues).id,
                                  occurred_at=T0 + timedelta(days=rng.randrange(90)), rule_version="sz-2025",
                                  explanation={"summary": "test"})
    db_session.commit()
    return {"districts": districts, "schools": schools,
            "city": f.user("city_officer"), "district": f.user("district_officer", district_=districts[0])}


GROUPS = [",".join(g) for n in (1, 2) for g in itertools.combinations(service.DIMENSIONS, n)]


def _filters(patchy):
    district, school = patchy["districts"][0].id, patchy["schools"][2].id
    return [{}, {"district_id": district}, {"grade": 5}, {"school_id": school}, {"school_id": school, "grade": 8}]


def _csv(result, venues=False):
    return export.file_response(result, "csv", venues=venues).get_data()


def _xlsx_values(result, venues=False):
    book = load_workbook(io.BytesIO(export.file_response(result, "xlsx", venues=venues).get_data()))
    return list(book.active.iter_rows(values_only=True))


def test_credit_rows_as_tuples_equal_the_dicts_and_write_the_same_files(app, patchy):
    suppressed = 0
    with app.test_request_context():
        for who, group_by, filters in itertools.product(("city", "district"), GROUPS, _filters(patchy)):
            if who == "district" and filters.get("school_id") is None and filters.get("district_id") is None:
                filters = {**filters, "district_id": patchy["districts"][0].id}
            ask = dict(user=patchy[who], school_year=YEAR, group_by=group_by, **filters)
            dicts = service.credit_stats(**ask)
            tuples = service.credit_stats(**ask, as_tuples=True)
            assert [dict(zip(tuples["fields"], t, strict=True)) for t in tuples["items"]] == dicts["items"]
            assert {k: v for k, v in tuples.items() if k not in ("items", "fields")} == \
                {k: v for k, v in dicts.items() if k != "items"}
            assert _csv(tuples) == _csv(dicts)
            suppressed += sum(item["suppressed"] for item in dicts["items"])
            if group_by in ("school,grade", "grade,activity_kind"):
                assert _xlsx_values(tuples) == _xlsx_values(dicts)
    assert suppressed > 50  # the district really exercises suppression


def test_venue_rows_as_tuples_equal_the_dicts_and_write_the_same_files(app, patchy):
    school = patchy["schools"][1].id
    with app.test_request_context():
        for query in ({}, {"group_by": "month"}, {"district_id": patchy["districts"][1].id},
                      {"school_id": school}, {"group_by": "month", "school_id": school}):
            ask = dict(user=patchy["city"], school_year=YEAR, **query)
            dicts = service.venue_stats(**ask)
            tuples = service.venue_stats(**ask, as_tuples=True)
            assert [dict(zip(tuples["fields"], t, strict=True)) for t in tuples["items"]] == dicts["items"]
            assert _csv(tuples, venues=True) == _csv(dicts, venues=True)
            assert _xlsx_values(tuples, venues=True) == _xlsx_values(dicts, venues=True)


def test_the_answer_is_credit_grid_suppressed_then_sliced(app, patchy):
    """credit_stats over flat cells hides exactly what suppress() hides on credit_grid's GridRows."""
    district_of = {s.id: s.district_id for s in patchy["schools"]}
    hidden = 0
    with app.test_request_context():
        rollup.refresh()  # what every answer does first (entries may wait in the queue)
        for group_by in ("school,grade", "school,month", "grade,activity_kind", "district,venue_kind"):
            dims = group_by.split(",")
            rows, schools = service.credit_grid(scope=service.Scope(None), school_year=YEAR, dims=dims)
            service.suppress(rows, dims, 5, {"school": {sid: s[service.DISTRICT] for sid, s in schools.items()}})
            wire = {"district": "district_id", "school": "school_id"}
            want = {tuple(r.key[d] for d in dims): (r.suppressed, r.students, r.participating) for r in rows}
            items = service.credit_stats(user=patchy["city"], school_year=YEAR, group_by=group_by, raw=True)["items"]
            got = {tuple(i[wire.get(d, d)] for d in dims): (i["suppressed"], i["_raw"]["students"],
                                                           i["_raw"]["participating"]) for i in items}
            assert got == want
            hidden += sum(h for h, *_ in want.values())
    assert hidden > 10 and set(district_of.values()) == {d.id for d in patchy["districts"]}


def test_suppression_on_plain_columns_is_suppress_on_grid_rows():
    rng = random.Random(7)
    for _ in range(200):
        keys = sorted({(rng.randrange(6), rng.randrange(4)) for _ in range(rng.randrange(2, 20))})
        students = [rng.choice((0, 2, 4, 5, 6, 9, 30)) for _ in keys]
        participating = [min(s, rng.choice((0, 1, 3, 5, 8, 30))) for s in students]
        parents = {"school": {s: s % 2 for s in range(6)}}
        rows = [service.GridRow({"school": k[0], "grade": k[1]}, s, p)
                for k, s, p in zip(keys, students, participating, strict=True)]
        service.suppress(rows, ["school", "grade"], 5, parents)
        primary, hidden = service.suppression(lambda keys=keys: list(keys), students, participating,
                                              ["school", "grade"], 5, parents)
        assert hidden == [r.suppressed for r in rows] and primary == [r.primary for r in rows]
