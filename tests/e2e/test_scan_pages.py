"""The scan landing page in a real browser: a parent checks in two children with one venue code;
a pupil checks in, leaves, and sees the credit with its reason."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from app.checkins.models import Checkin, Scan
from app.db import utcnow
from app.orgs.models import School
from app.venues import codes
from tests import factories as f


def _city(session, *, kind="visit"):
    klass = f.school_class(grade=5, name="五年级(2)班")
    museum = f.venue(name="南山科技馆", kind="science_museum", level="city")
    activity = f.activity(museum, kind=kind, title="机器人科普讲座" if kind == "lecture" else "常设展厅参观",
                          starts_at=utcnow() - timedelta(hours=2), ends_at=utcnow() + timedelta(hours=4))
    return klass, museum, activity


def test_guardian_scans_a_venue_code_and_checks_in_two_children(open_page, data):
    with data() as session:
        klass, _, activity = _city(session)
        elder = f.student(klass, name="林思远")
        younger = f.student(f.school_class(session.get(School, klass.school_id), grade=3, name="三年级(1)班"), name="林思琪")
        parent = f.user("guardian", username="e2e-parent", children=[elder, younger])
        url = codes.venue_code(activity.id, "entry", utcnow()).url
        ids = (elder.id, younger.id)
        scans_before = session.scalar(select(func.count()).select_from(Scan))

    page = open_page()
    page.goto(url)  # what the phone camera opens
    assert "/login" in page.page.url
    page.check("guardian-0-login-first")
    page.login(parent.username, None)
    assert "/s/" in page.page.url  # back to the same code after logging in
    boxes = page.page.locator('input[name="student_id"]')
    assert boxes.count() == 2
    with data() as session:  # opening the page changed nothing
        assert session.scalar(select(func.count()).select_from(Scan)) == scans_before
    page.check("guardian-1-pick-children")
    boxes.nth(0).check()
    boxes.nth(1).check()
    with page.page.expect_navigation():
        page.page.click("button.btn-huge")
    assert page.page.locator('[data-result="ok"]').count() == 2
    assert page.page.locator(".result-headline").all_inner_texts() == ["签到成功", "签到成功"]
    page.check("guardian-2-two-children-checked-in")
    page.goto("/guardian")
    cards = page.page.locator(".child-card")
    assert cards.count() == 2
    assert all("已签到" in text for text in cards.all_inner_texts())
    page.check("guardian-3-home")

    with data() as session:
        stays = session.scalars(select(Checkin).where(Checkin.student_id.in_(ids))).all()
        assert sorted(s.student_id for s in stays) == sorted(ids)
        assert {s.source for s in stays} == {"guardian"}
        assert all(s.device_id and s.device_id.startswith("web-") for s in stays)


def test_student_enters_leaves_and_sees_the_credit(open_page, data, code_url):
    with data() as session:
        klass, _, activity = _city(session, kind="lecture")
        pupil = f.student(klass, name="陈可欣")
        account = f.student_user(pupil)
        activity_id, student_id = activity.id, pupil.id

    page = open_page()
    page.login(account.username, None)
    assert page.page.url.endswith("/student")
    page.goto(code_url(activity_id, "entry"))
    assert page.page.inner_text(".scan-direction") == "签到"
    page.check("student-1-confirm-entry")
    with page.page.expect_navigation():
        page.page.click("button.btn-huge")
    assert page.page.inner_text(".result-headline") == "签到成功"
    page.check("student-2-entered")

    # The lecture lasted 50 minutes: move the entry back (the clock cannot be waited out in a test).
    with data() as session:
        session.execute(update(Checkin).where(Checkin.student_id == student_id)
                        .values(entered_at=utcnow() - timedelta(minutes=50)))

    page.goto(code_url(activity_id, "exit"))
    assert page.page.inner_text(".scan-direction") == "签退"
    with page.page.expect_navigation():
        page.page.click("button.btn-huge")
    assert page.page.inner_text(".result-headline") == "签退成功"
    assert "50" in page.page.inner_text(".result-minutes")
    assert page.page.inner_text(".result-credit strong") == "1.00"
    assert "讲座" in page.page.inner_text(".result-message")
    page.check("student-3-left-with-credit")

    page.goto("/student")
    assert page.page.inner_text(".js-total") == "1.00"
    assert "+1.00" in page.page.inner_text(".activities")
    page.check("student-4-home")
    pdf = page.page.request.get(page.base_url + page.page.get_attribute("a[href$='transcript.pdf']", "href"))
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF")
    page.goto(page.page.get_attribute(".pass-link", "href"))
    page.check("student-5-pass-full-screen")
