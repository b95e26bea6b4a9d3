"""Talent discovery: the three SPEC §12 criteria with their evidence, school scope, and the audit."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.credits.rules import local_date, school_year_of
from app.db import utcnow
from app.extensions import db
from app.reviews.models import CompetitionClaim
from tests import factories as f
from tests.matching.helpers import credit

YEAR = school_year_of(local_date(utcnow()))


def claim(pupil, level, award, status="approved", title="智能垃圾分类机器人", on=None):
    row = CompetitionClaim(
        student_id=pupil.id, competition="青少年科技创新大赛", level=level, award=award, work_title=title,
        work_key=title, awarded_on=on or local_date(utcnow()), evidence_name="证书.pdf", evidence_path="x",
        evidence_type="application/pdf", evidence_sha256="0" * 64, status=status, submitted_by=pupil_account(pupil).id,
    )
    db.session.add(row)
    db.session.commit()
    return row


def pupil_account(pupil):
    return f.student_user(pupil)


@pytest.fixture
def school(ctx):
    school = f.school(name="南山实验学校")
    grade5 = [f.school_class(school, grade=5, name=f"5年级({n})班") for n in (1, 2)]
    pupils = [f.student(grade5[n % 2], number=f"5{n:03d}") for n in range(30)]
    seventh = f.school_class(school, grade=7, name="7年级(1)班")
    older = [f.student(seventh, number=f"7{n:03d}") for n in range(10)]
    for n, pupil in enumerate(pupils):
        credit(pupil, "visit", f"{1 + n % 3}.00")
    return {"school": school, "pupils": pupils, "older": older,
            "admin": f.user("school_admin", school_=school)}


def test_each_criterion_with_its_evidence(client, school):
    pupils, older = school["pupils"], school["older"]
    star, runner_up = pupils[4], pupils[7]
    credit(star, "workshop", "6.00")  # 8.00: the best of 30 in grade 5 (top 5 % → the best 2)
    credit(runner_up, "workshop", "5.00")  # 7.00: the second
    awarded = pupils[10]
    claim(awarded, "provincial", "first")
    claim(pupils[11], "national", "participation")  # a participation award does not single out
    claim(pupils[12], "national", "first", status="pending")  # not yet approved
    claim(pupils[13], "city", "first")  # below provincial
    claim(pupils[14], "national", "second", on=date(2019, 5, 1))  # another school year
    broad = older[3]
    for kind in ("visit", "lecture", "workshop"):
        credit(broad, kind, "1.00")
    credit(broad, "competition", "0.50", competition="七巧板竞赛")
    narrow = older[4]
    for kind in ("visit", "lecture", "workshop"):
        credit(narrow, kind, "0.50")

    res = client.get(f"/api/v1/schools/{school['school'].id}/talent?school_year={YEAR}", headers=f.bearer(school["admin"]))
    assert res.status_code == 200, res.json
    assert res.headers["Cache-Control"] == "no-store"
    items = {i["student_id"]: i for i in res.json["items"]}
    assert set(items) == {star.id, runner_up.id, awarded.id, broad.id}
    assert items[star.id]["criteria"] == ["top_credits"]
    top = items[star.id]["evidence"][0]
    assert top["grade"] == 5 and top["grade_pupils"] == 30 and top["total"] == "8.00" and top["line"] == "7.00"
    assert "前 5%" in top["detail"]
    award = items[awarded.id]["evidence"][0]
    assert items[awarded.id]["criteria"] == ["award"]
    assert (award["level"], award["award"], award["work_title"]) == ("provincial", "first", "智能垃圾分类机器人")
    assert award["detail"].startswith("省级青少年科技创新大赛一等奖")
    assert "breadth" in items[broad.id]["criteria"]
    breadth = next(e for e in items[broad.id]["evidence"] if e["criterion"] == "breadth")
    assert breadth["kinds"] == ["visit", "lecture", "workshop", "competition"]
    # in grade 7 the broad pupil also has the best total of 10 (top 5 % → the best one)
    assert items[broad.id]["criteria"] == ["top_credits", "breadth"]
    # ordered by grade, class, number — never ranked by credits
    order = [i["student_id"] for i in res.json["items"]]
    assert order == sorted(order, key=lambda sid: (items[sid]["grade"], items[sid]["class_name"],
                                                  items[sid]["student_number"]))
    assert res.json["pupils_considered"] == 40


def test_ties_beyond_the_share_do_not_stand_out_and_nobody_without_credits(client, ctx):
    school = f.school()
    klass = f.school_class(school, grade=3)
    pupils = [f.student(klass) for _ in range(10)]  # top 5 % of 10 → one pupil
    admin = f.user("school_admin", school_=school)
    url = f"/api/v1/schools/{school.id}/talent"
    res = client.get(url, headers=f.bearer(admin))
    assert res.status_code == 200 and res.json["items"] == [] and res.json["school_year"] == YEAR
    credit(pupils[0], "visit", "2.00")
    credit(pupils[1], "visit", "2.00")
    credit(pupils[2], "visit", "1.00")
    assert client.get(url, headers=f.bearer(admin)).json["items"] == []  # two share the best total
    credit(pupils[1], "lecture", "0.50")
    assert [i["student_id"] for i in client.get(url, headers=f.bearer(admin)).json["items"]] == [pupils[1].id]


def test_only_the_schools_own_admin(client, school):
    credit(school["pupils"][0], "workshop", "9.00")
    url = f"/api/v1/schools/{school['school'].id}/talent"
    other_admin = f.user("school_admin", school_=f.school())
    res = client.get(url, headers=f.bearer(other_admin))
    assert res.status_code == 404 and res.json["error"]["code"] == "not_found"
    assert client.get("/api/v1/schools/999999/talent", headers=f.bearer(school["admin"])).status_code == 404
    klass = f.school_class(school["school"], grade=5)
    for account in (
        f.user("teacher", school_=school["school"], classes=[klass]),
        f.user("guardian", children=[school["pupils"][0]]),
        f.student_user(school["pupils"][0]),
        f.user("district_officer", district_=school["school"].district),
        f.user("city_officer"),
        f.user("venue_staff"),
    ):
        assert client.get(url, headers=f.bearer(account)).status_code == 403, account.role
    assert client.get(url).status_code == 401
    assert client.get(url + "?school_year=2025", headers=f.bearer(school["admin"])).status_code == 422


def test_every_pupil_listed_is_an_audited_read(client, school):
    star = school["pupils"][0]
    credit(star, "workshop", "9.00")
    claim(school["older"][0], "national", "third")
    res = client.get(f"/api/v1/schools/{school['school'].id}/talent", headers=f.bearer(school["admin"]))
    listed = {i["student_id"] for i in res.json["items"]}
    assert listed == {star.id, school["older"][0].id}
    rows = db.session.execute(
        select(AuditEntry.student_id, AuditEntry.action, AuditEntry.actor_id, AuditEntry.route)
        .where(AuditEntry.action == "talent")
    ).all()
    assert {r.student_id for r in rows} == listed
    assert all(r.actor_id == school["admin"].id and r.route.endswith("/talent") for r in rows)
