"""The guardian's children, the class progress rows (JSON and xlsx), and the whole-school workbook."""

from __future__ import annotations

import io
from decimal import Decimal

import openpyxl
import pytest

from app.reviews.models import Review
from tests import factories as f
from tests.transcripts.conftest import TERM1, YEAR, credited_stay, get

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_guardian_sees_each_linked_child(client, school, db_session):
    second = f.student(school["other_class"], name="王小红")
    parent = f.user("guardian", children=[school["ming"], second])
    db_session.add(Review(kind="checkin", student_id=school["ming"].id, school_id=school["school"].id,
                          class_id=school["class"].id, status="pending",
                          reasons=[{"code": "shared_device", "message": "同一设备签到多名学生"}]))
    db_session.commit()
    res = get(client, parent, f"/api/v1/me/children?school_year={YEAR}")
    assert res.status_code == 200
    items = res.json["items"]
    assert [i["name"] for i in items] == ["王小明", "王小红"]
    ming, hong = items
    assert (ming["student_id"], ming["school_year"], ming["total"], ming["required"], ming["met"]) == (
        school["ming"].id, YEAR, "7.30", "8.00", False)
    assert ming["missing"]["credits"] == "0.70" and ming["missing"]["kinds"] == 0
    assert ming["missing"]["hint"] == "还差 0.70 学分"
    assert len(ming["recent"]) == 3 and ming["recent"][0]["activity_title"] == "超级计算机动手实验"
    assert ming["recent"][0]["credits"] == "1.80" and ming["recent"][0]["status_label"]
    assert [r["status"] for r in ming["pending_reviews"]] == ["pending"]
    assert ming["pending_reviews"][0]["reasons"][0]["code"] == "shared_device"
    assert (hong["total"], hong["required"], hong["met"], hong["recent"], hong["pending_reviews"]) == (
        "0.00", "10.00", False, [], [])
    assert hong["missing"]["kinds"] == 3 and hong["missing"]["one_of"]
    # The same numbers as the child's transcript.
    transcript = get(client, parent, f"/api/v1/students/{school['ming'].id}/transcript?school_year={YEAR}").json
    assert (transcript["total"], transcript["required"], transcript["missing"]) == (
        ming["total"], ming["required"], ming["missing"])


def test_guardian_of_another_child_gets_404(client, school):
    other = school["other_parent"]
    assert [i["student_id"] for i in get(client, other, "/api/v1/me/children").json["items"]] != [school["ming"].id]
    sid = school["ming"].id
    for url in (f"/api/v1/students/{sid}/transcript", f"/api/v1/students/{sid}/transcript?format=pdf",
                f"/api/v1/students/{sid}/ledger", f"/api/v1/students/{sid}/pass", f"/api/v1/students/{sid}",
                f"/api/v1/students/{sid}/checkins"):
        assert get(client, other, url).status_code == 404, url
    for role in ("teacher", "admin", "student"):
        assert get(client, school[role], "/api/v1/me/children").status_code == 403


def test_class_progress_rows(client, school, db_session):
    db_session.add(Review(kind="claim", student_id=school["hua"].id, school_id=school["school"].id,
                          class_id=school["class"].id, status="appealed", reasons=[]))
    db_session.commit()
    url = f"/api/v1/classes/{school['class'].id}/progress?school_year={YEAR}"
    res = get(client, school["teacher"], url)
    assert res.status_code == 200 and res.json["class_name"] == "五(1)班"
    rows = {r["name"]: r for r in res.json["items"]}
    assert list(rows) == ["王小明", "李华"]  # by student number
    ming, hua = rows["王小明"], rows["李华"]
    assert (ming["total"], ming["required"], ming["met"], ming["flagged"]) == ("7.30", "8.00", False, 0)
    assert ming["kinds"] == ["visit", "lecture", "workshop", "competition"]
    assert ming["last_activity_at"].startswith("2026-03-10T10:00:00+08:00")
    assert (hua["total"], hua["kinds"], hua["flagged"]) == ("1.00", ["lecture"], 1)
    assert hua["last_activity_at"].startswith("2025-10-14")
    by_total = get(client, school["teacher"], url + "&sort=-total").json["items"]
    assert [r["name"] for r in by_total] == ["王小明", "李华"]
    assert [r["name"] for r in get(client, school["teacher"], url + "&sort=total").json["items"]] == ["李华", "王小明"]
    assert [r["name"] for r in get(client, school["admin"], url + "&sort=-flagged").json["items"]] == ["李华", "王小明"]
    assert get(client, school["teacher"], url + "&sort=password").status_code == 422
    # Rows agree with each pupil's transcript.
    for pupil in (school["ming"], school["hua"]):
        transcript = get(client, school["teacher"], f"/api/v1/students/{pupil.id}/transcript?school_year={YEAR}").json
        row = next(r for r in res.json["items"] if r["student_id"] == pupil.id)
        assert (row["total"], row["required"], row["met"], row["kinds"]) == (
            transcript["total"], transcript["required"], transcript["met"], transcript["kinds"])


def test_class_progress_scope(client, school):
    url = f"/api/v1/classes/{school['class'].id}/progress"
    other_teacher = f.user("teacher", school_=school["school"], classes=[school["other_class"]])
    assert get(client, other_teacher, url).status_code == 404
    assert get(client, school["other_admin"], url).status_code == 404
    assert get(client, school["parent"], url).status_code == 403
    officer = f.user("district_officer", district_=school["school"].district)
    assert get(client, officer, url).status_code == 403
    assert get(client, school["teacher"], f"/api/v1/classes/{school['other_class'].id}/progress").status_code == 404
    assert get(client, school["admin"], f"/api/v1/classes/{school['other_class'].id}/progress").status_code == 200


def _sheet_rows(sheet):
    rows = list(sheet.iter_rows(values_only=True))
    return rows[0], rows[1:]


def test_class_xlsx_has_chinese_headers_and_the_api_totals(client, school):
    url = f"/api/v1/classes/{school['class'].id}/progress?school_year={YEAR}"
    api = get(client, school["teacher"], url).json["items"]
    res = get(client, school["teacher"], url + "&format=xlsx")
    assert res.status_code == 200 and res.mimetype == XLSX
    assert "attachment" in res.headers["Content-Disposition"] and res.headers["Cache-Control"] == "no-store"
    book = openpyxl.load_workbook(io.BytesIO(res.data))
    assert book.sheetnames == ["五(1)班"]
    header, rows = _sheet_rows(book["五(1)班"])
    assert header[:7] == ("学号", "姓名", "年级", "班级", "本学年学分", "年度要求", "是否达标")
    assert [(r[0], r[1], Decimal(str(r[4])), Decimal(str(r[5])), r[6]) for r in rows] == [
        (a["student_number"], a["name"], Decimal(a["total"]), Decimal(a["required"]), "是" if a["met"] else "否")
        for a in api]
    assert rows[0][7] == "参观、讲座、实验/工作坊、竞赛" and rows[0][8] == "还差 0.70 学分"


def test_school_workbook_one_sheet_per_class(client, school):
    extra = f.school_class(school["school"], grade=5, name="五(2)班")
    pupil = f.student(extra, name="周杰", number="2025101")
    credited_stay(pupil, school["lecture"], TERM1, 45)
    res = get(client, school["admin"], f"/api/v1/schools/{school['school'].id}/progress.xlsx?school_year={YEAR}")
    assert res.status_code == 200 and res.mimetype == XLSX
    book = openpyxl.load_workbook(io.BytesIO(res.data))
    assert book.sheetnames == ["五(1)班", "五(2)班", "八(2)班"]
    for klass in (school["class"], extra, school["other_class"]):
        api = get(client, school["admin"], f"/api/v1/classes/{klass.id}/progress?school_year={YEAR}").json["items"]
        header, rows = _sheet_rows(book[klass.name])
        assert header[4] == "本学年学分"
        assert {r[0]: Decimal(str(r[4])) for r in rows} == {a["student_number"]: Decimal(a["total"]) for a in api}
    assert get(client, school["teacher"], f"/api/v1/schools/{school['school'].id}/progress.xlsx").status_code == 403
    assert get(client, school["other_admin"],
               f"/api/v1/schools/{school['school'].id}/progress.xlsx").status_code == 404


@pytest.mark.parametrize("name", ["初一[1]班/科创:*?", "x" * 40])
def test_sheet_titles_are_valid(client, school, name):
    klass = f.school_class(school["school"], grade=7, name=name)
    f.student(klass)
    res = get(client, school["admin"], f"/api/v1/classes/{klass.id}/progress?format=xlsx")
    title = openpyxl.load_workbook(io.BytesIO(res.data)).sheetnames[0]
    assert len(title) <= 31 and not set(title) & set("[]:*?/\\")
