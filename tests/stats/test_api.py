"""GET /api/v1/stats/credits and /stats/venues: roles, scope, validation, labels, no pupil identity,
xlsx/csv round trips, the venue index, changes reconciled before answering, and credits made
through the real scan pipeline."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import insert, update

from app.checkins import service as checkins
from app.credits import ledger
from app.orgs.models import Student
from app.venues import codes
from tests import factories as f

YEAR = "2026-2027"
T0 = datetime(2026, 10, 12, 2, 0, tzinfo=UTC)  # Monday 12 Oct 2026, 10:00 in Shanghai


def credit(pupil, amount, venue, kind="visit", at=T0, source="checkin"):
    return ledger.append(student_id=pupil.id, kind="credit", amount=Decimal(amount), source=source,
                         activity_kind=kind, venue_id=venue.id, occurred_at=at, rule_version="sz-2025",
                         explanation={"summary": "test"})


@pytest.fixture
def town(db_session):
    """福田区 (two schools, grades 5 and 8) and 南山区 (one school); every pupil active in October
    and November at a 科技馆 and a 博物馆; officers for both levels."""
    futian, nanshan = f.district("福田区"), f.district("南山区")
    museum = f.venue(futian, kind="science_museum", level="city", name="深圳科技馆")
    history = f.venue(nanshan, kind="museum", level="provincial", name="南山博物馆")
    schools = [f.school(futian, name="福田实验学校"), f.school(futian, name="福田外国语学校"),
               f.school(nanshan, name="南山二外")]
    pupils = []
    for school in schools:
        for grade, size in ((5, 8), (8, 6)):
            klass = f.school_class(school, grade=grade)
            for i in range(size):
                pupil = f.student(klass, name=f"张{school.id}{grade}{i}同学")
                credit(pupil, "1.50", museum)
                credit(pupil, "2.00", history, kind="workshop", at=T0 + timedelta(days=30))
                pupils.append(pupil)
    db_session.commit()
    return {
        "futian": futian, "nanshan": nanshan, "museum": museum, "history": history, "schools": schools,
        "pupils": pupils,
        "district_officer": f.user("district_officer", district_=futian),
        "city_officer": f.user("city_officer"),
    }


def get(client, user, path="/api/v1/stats/credits", status=200, **query):
    query.setdefault("school_year", YEAR)
    response = client.get(path, query_string=query, headers=f.bearer(user))
    assert response.status_code == status, response.get_data(as_text=True)
    return response


def test_city_officer_gets_districts_with_every_number(client, town):
    body = get(client, town["city_officer"], group_by="district").json
    assert body["school_year"] == YEAR and body["group_by"] == ["district"] and body["min_cell"] == 5
    rows = {r["district_id"]: r for r in body["items"]}
    futian = rows[town["futian"].id]
    assert futian == {
        "district_id": town["futian"].id, "label": "福田区", "students": 28, "participating": 28,
        "participation_rate": 1.0, "credits_total": "98.00", "credits_mean": "3.50", "met_rate": 0.0,
        "suppressed": False,
    }
    assert rows[town["nanshan"].id]["students"] == 14


def test_labels_are_readable_chinese(client, town):
    officer = town["district_officer"]
    grades = get(client, officer, group_by="grade").json["items"]
    assert [r["label"] for r in grades] == ["五年级", "八年级"]
    kinds = get(client, officer, group_by="activity_kind").json["items"]
    assert [r["label"] for r in kinds] == ["参观", "实验/工作坊"]
    assert all(r["met_rate"] is None for r in kinds)  # met is a property of a pupil's year
    venues = get(client, officer, group_by="venue_kind").json["items"]
    assert [r["label"] for r in venues] == ["科技馆", "博物馆"]
    months = get(client, officer, group_by="month").json["items"]
    assert [(r["month"], r["label"], r["participating"]) for r in months] == [("2026-10", "2026-10", 28),
                                                                              ("2026-11", "2026-11", 28)]
    pair = get(client, officer, group_by="school,grade").json["items"][0]
    assert pair["label"] == "福田实验学校 / 五年级" and pair["district_id"] == town["futian"].id


def test_entry_rows_keep_the_population_as_students(client, town):
    rows = get(client, town["city_officer"], group_by="district,month").json["items"]
    october = next(r for r in rows if r["district_id"] == town["futian"].id and r["month"] == "2026-10")
    assert october["students"] == 28 and october["credits_total"] == "42.00" and october["credits_mean"] == "1.50"


def test_district_officer_is_confined_to_their_district(client, town):
    officer = town["district_officer"]
    rows = get(client, officer, group_by="district").json["items"]
    assert [r["district_id"] for r in rows] == [town["futian"].id]
    schools = get(client, officer, group_by="school").json["items"]
    assert {r["school_id"] for r in schools} == {town["schools"][0].id, town["schools"][1].id}
    nanshan_school = town["schools"][2].id
    for query in ({"district_id": town["nanshan"].id}, {"school_id": nanshan_school}, {"school_id": 999999},
                  {"district_id": 999999}):
        response = get(client, officer, status=404, group_by="grade", **query)
        assert response.json["error"]["code"] == "not_found"
        assert "items" not in response.json
    for path in ("/api/v1/stats/venues",):
        assert get(client, officer, path, status=404, school_id=nanshan_school).json["error"]["code"] == "not_found"


def test_only_officers_and_the_admin_may_ask(client, town):
    teacher = f.user("teacher", school_=town["schools"][0])
    pupil_account = f.student_user(town["pupils"][0])
    for account in (teacher, pupil_account, f.user("school_admin", school_=town["schools"][0])):
        assert get(client, account, status=403, group_by="school").json["error"]["code"] == "forbidden"
    assert client.get("/api/v1/stats/credits?group_by=school").status_code == 401
    assert get(client, f.user("admin"), group_by="school").json["items"]


@pytest.mark.parametrize("query", [
    {"group_by": ""}, {"group_by": "pupil"}, {"group_by": "school,grade,month"}, {"group_by": "grade,grade"},
    {"group_by": "school", "school_year": "2026"}, {"group_by": "school", "grade": 10},
    {"group_by": "school", "format": "pdf"},
])
def test_bad_questions_are_422(client, town, query):
    body = get(client, town["city_officer"], status=422, **query).json
    assert body["error"]["code"] == "validation_error"


def test_no_field_of_any_answer_names_a_pupil(client, town):
    officer = town["city_officer"]
    names = {p.name for p in town["pupils"]} | {p.student_number for p in town["pupils"]}
    answers = [get(client, officer, group_by=g).json for g in
               ("district", "school", "grade", "activity_kind", "venue_kind", "month", "school,grade", "school,month",
                "grade,activity_kind")]
    answers += [get(client, officer, "/api/v1/stats/venues").json,
                get(client, officer, "/api/v1/stats/venues", group_by="month").json]
    for body in answers:
        text = json.dumps(body, ensure_ascii=False)
        assert not any(name in text for name in names)
        for row in body["items"]:
            assert not {"student_id", "student_number", "student", "name_of_student"} & set(row)
    exports = [get(client, officer, group_by="school,grade", format="csv").data.decode("utf-8-sig"),
               get(client, officer, "/api/v1/stats/venues", format="csv").data.decode("utf-8-sig")]
    for text in exports:
        assert not any(name in text for name in names)


def test_csv_round_trip(client, town):
    officer = town["city_officer"]
    body = get(client, officer, group_by="school,grade").json
    response = get(client, officer, group_by="school,grade", format="csv")
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"  # once, as Excel and RFC 7111 expect
    assert response.data.startswith("\ufeff".encode())  # the BOM that makes Excel read UTF-8
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert list(rows[0]) == ["区ID", "学校ID", "年级", "名称", "学生数", "参与人数", "参与率", "学分合计", "人均学分",
                             "达标率", "已抑制"]
    assert len(rows) == len(body["items"])
    for line, item in zip(rows, body["items"], strict=True):
        assert int(line["区ID"]) == item["district_id"] and int(line["学校ID"]) == item["school_id"]
        assert int(line["年级"]) == item["grade"] and line["名称"] == item["label"]
        assert int(line["学生数"]) == item["students"] and int(line["参与人数"]) == item["participating"]
        assert float(line["参与率"]) == item["participation_rate"] and float(line["达标率"]) == item["met_rate"]
        assert line["学分合计"] == item["credits_total"] and line["人均学分"] == item["credits_mean"]
        assert line["已抑制"] == ("是" if item["suppressed"] else "否")


def test_xlsx_round_trip_with_a_suppressed_row(client, town, db_session):
    lone = f.school(town["futian"], name="小学校")
    for _ in range(2):
        credit(f.student(f.school_class(lone, grade=3)), "1.00", town["museum"])
    db_session.commit()
    officer = town["district_officer"]
    body = get(client, officer, group_by="school").json
    response = get(client, officer, group_by="school", format="xlsx")
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = load_workbook(io.BytesIO(response.data)).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0] == ("区ID", "学校ID", "名称", "学生数", "参与人数", "参与率", "学分合计", "人均学分", "达标率", "已抑制")
    assert len(values) - 1 == len(body["items"])
    suppressed = 0
    for line, item in zip(values[1:], body["items"], strict=True):
        assert (line[0], line[1], line[2]) == (item["district_id"], item["school_id"], item["label"])
        if item["suppressed"]:
            suppressed += 1
            assert line[3:9] == (None,) * 6 and line[9] == "是"
        else:
            assert line[3] == item["students"] and line[4] == item["participating"]
            assert line[5] == pytest.approx(item["participation_rate"]) and line[8] == pytest.approx(item["met_rate"])
            assert f"{Decimal(str(line[6])):.2f}" == item["credits_total"]
            assert f"{Decimal(str(line[7])):.2f}" == item["credits_mean"]
    assert suppressed == 2  # the small school and its complement


def test_venue_activity_index(client, town):
    officer = town["city_officer"]
    body = get(client, officer, "/api/v1/stats/venues").json
    rows = {r["venue_id"]: r for r in body["items"]}
    museum = rows[town["museum"].id]
    assert museum == {
        "venue_id": town["museum"].id, "name": "深圳科技馆", "kind": "science_museum", "level": "city",
        "district_id": town["futian"].id, "label": "深圳科技馆", "checkins": 42, "students": 42, "schools": 3,
        "districts": 2, "credits": "63.00", "suppressed": False,
    }
    months = get(client, officer, "/api/v1/stats/venues", group_by="month").json["items"]
    assert {(r["venue_id"], r["month"]) for r in months} == {(town["museum"].id, "2026-10"),
                                                             (town["history"].id, "2026-11")}
    mine = get(client, town["district_officer"], "/api/v1/stats/venues").json["items"]
    assert {r["venue_id"]: r["students"] for r in mine}[town["museum"].id] == 28  # only 福田 pupils count
    assert {r["venue_id"]: r["districts"] for r in mine}[town["museum"].id] == 1
    sheet = load_workbook(io.BytesIO(get(client, officer, "/api/v1/stats/venues", format="xlsx").data)).active
    header = next(sheet.iter_rows(values_only=True))
    assert header == ("场馆ID", "场馆", "场馆类型", "级别", "场馆所在区ID", "名称", "签到人次", "学生数", "覆盖学校数",
                      "覆盖区数", "学分合计", "已抑制")
    text = get(client, officer, "/api/v1/stats/venues", format="csv").data.decode("utf-8-sig")
    lines = list(csv.DictReader(io.StringIO(text)))
    assert {int(line["场馆ID"]): int(line["签到人次"]) for line in lines if line["签到人次"]}[town["museum"].id] == 42


def test_a_venue_reaching_fewer_than_five_pupils_is_hidden(client, town, db_session):
    small = f.venue(town["futian"], kind="science_museum", name="小场馆")
    for pupil in town["pupils"][:3]:
        credit(pupil, "1.00", small)
    db_session.commit()
    rows = {r["venue_id"]: r for r in get(client, town["city_officer"], "/api/v1/stats/venues").json["items"]}
    assert rows[small.id]["suppressed"] and rows[small.id]["students"] is None and rows[small.id]["checkins"] is None
    assert rows[town["museum"].id]["suppressed"]  # the other 科技馆: the kind's total would give it away


def test_roster_changes_by_bulk_sql_are_counted_before_answering(client, town, db_session):
    school = town["schools"][0]
    klass = f.school_class(school, grade=3)
    db_session.execute(insert(Student), [
        {"school_id": school.id, "class_id": klass.id, "grade": 3, "student_number": f"B{i}", "name": f"新生{i}",
         "active": True, "pass_version": 1} for i in range(6)])
    db_session.execute(update(Student).where(Student.id == town["pupils"][0].id).values(active=False))
    db_session.commit()
    rows = {r["grade"]: r for r in get(client, town["district_officer"], group_by="grade",
                                       school_id=school.id).json["items"]}
    assert rows[3]["students"] == 6 and rows[3]["participating"] == 0
    assert rows[5]["students"] == 7 and rows[5]["credits_total"] == "24.50"


def test_credits_made_through_the_scan_pipeline_show_up(client, db_session):
    """Real stays: venue code → entry → exit → credit_stay → ledger.append → roll-ups."""
    district = f.district("宝安区")
    museum = f.venue(district, kind="science_museum", level="city")
    start = T0 - timedelta(hours=1)
    visit = f.activity(museum, kind="visit", starts_at=start, ends_at=start + timedelta(hours=8))
    klass = f.school_class(f.school(district), grade=5)
    accounts = [f.student_user(f.student(klass)) for _ in range(6)]

    def scan(account, direction, at):
        token = codes.venue_code(visit.id, direction, at).token
        body = {"code": token, "nonce": str(uuid.uuid4())}
        request = checkins.ScanRequest(actor=account, source="self", code=token, nonce=body["nonce"], body=body)
        return checkins.scan(request, now=at)

    for i, account in enumerate(accounts):
        assert scan(account, "entry", T0 + timedelta(minutes=i)).status == 201
        assert scan(account, "exit", T0 + timedelta(minutes=61 + i)).status == 201  # 60 min: 1.00 credit
    officer = f.user("district_officer", district_=district)
    db_session.commit()
    row = get(client, officer, group_by="activity_kind").json["items"][0]
    assert (row["activity_kind"], row["participating"], row["credits_total"]) == ("visit", 6, "6.00")
    venue = next(r for r in get(client, officer, "/api/v1/stats/venues").json["items"] if r["venue_id"] == museum.id)
    assert (venue["checkins"], venue["students"], venue["schools"], venue["credits"]) == (6, 6, 1, "6.00")


def test_openapi_documents_the_statistics(client):
    spec = client.get("/api/v1/openapi.json").json
    assert "/api/v1/stats/credits" in spec["paths"] and "/api/v1/stats/venues" in spec["paths"]
