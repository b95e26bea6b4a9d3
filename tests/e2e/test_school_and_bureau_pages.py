"""Teacher and bureau pages in a real browser: a teacher approves a flagged stay from the review
queue; the bureau dashboard draws its charts with the small-cell suppression visible."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

from sqlalchemy import select

from app.checkins.service import ScanRequest, scan
from app.credits.models import LedgerEntry
from app.credits.rules import local_date
from app.db import utcnow
from app.reviews.models import Review
from app.reviews.service import submit_claim
from app.venues import codes
from tests import factories as f


def _self_scan(account, activity_id, direction, when, device):
    code = codes.venue_code(activity_id, direction, when).token
    nonce = str(uuid.uuid4())
    return scan(ScanRequest(actor=account, source="self", code=code, nonce=nonce, device_id=device,
                            body={"code": code, "nonce": nonce}), now=when)


def test_teacher_approves_a_flagged_stay(open_page, data):
    with data():
        klass = f.school_class(grade=6, name="六年级(1)班")
        museum = f.venue(name="深圳科学技术馆", kind="science_museum", level="city")
        activity = f.activity(museum, kind="lecture", title="中国空间站的一天",
                              starts_at=utcnow() - timedelta(hours=3), ends_at=utcnow() + timedelta(hours=3))
        pupils = [f.student(klass, name=name) for name in ("周子涵", "吴宇轩", "郑雨桐")]
        accounts = [f.student_user(p) for p in pupils]
        teacher = f.user("teacher", username=f"e2e-teacher-{klass.id}", classes=[klass])
        entered = utcnow() - timedelta(minutes=70)
        for n, account in enumerate(accounts):  # one phone checks in three pupils: the third is flagged
            _self_scan(account, activity.id, "entry", entered + timedelta(minutes=n), "shared-phone-1")
        _self_scan(accounts[2], activity.id, "exit", utcnow() - timedelta(minutes=5), "shared-phone-1")
        flagged_pupil = pupils[2].id
        submit_claim(student=pupils[0], actor=accounts[0], competition="青少年科技创新大赛", level="city",
                     award="second", work_title="校园雨水回收装置", awarded_on=local_date(utcnow()),
                     filename="证书.png", data=_certificate_png())
        f.activity(f.venue(name="深圳湾公园"), kind="research", title="深圳湾红树林研学",
                   starts_at=utcnow() - timedelta(hours=1), ends_at=utcnow() + timedelta(hours=5), grades=[5, 6, 7])

    with data() as session:
        review = session.scalar(select(Review).where(Review.student_id == flagged_pupil))
        assert review.status == "pending"
        review_id = review.id

    page = open_page()
    page.login(teacher.username, None)
    assert page.page.url.endswith("/teacher")
    assert "有 2 项待复核" in page.page.inner_text("main")
    page.goto("/teacher/reviews")
    card = page.page.locator(f'[data-review-id="{review_id}"]')
    assert "郑雨桐" in card.inner_text()
    assert "同一设备" in card.inner_text()
    assert "shared-phone-1" in card.inner_text()
    claim_card = page.page.locator(".review-card", has_text="青少年科技创新大赛")
    assert "市级二等奖" in claim_card.inner_text()
    assert claim_card.locator("img.evidence").evaluate("img => img.naturalWidth") > 0
    page.check("teacher-1-review-queue")
    card.locator('textarea[name="reason"]').fill("已向场馆核实，三名学生确实一同到场")
    with page.page.expect_navigation():
        card.locator('button[value="approve"]').click()
    assert "复核通过，学分已计入" in page.page.inner_text(".flash")
    assert page.page.locator(f'[data-review-id="{review_id}"]').count() == 0
    page.check("teacher-2-approved")

    with data() as session:
        review = session.get(Review, review_id)
        assert review.status == "approved"
        entry = session.get(LedgerEntry, review.credit_entry_id)
        assert f"{entry.amount:.2f}" == "1.00"

    page.goto("/teacher")
    rows = page.page.locator("table.progress-table tbody tr")
    assert rows.count() == 3
    assert page.page.locator("tr.behind").count() >= 2  # the two without any credit
    page.page.click("th button.sort >> nth=2")  # sort by credits, twice → descending
    page.page.click("th button.sort >> nth=2")
    assert "郑雨桐" in rows.nth(0).inner_text()
    page.check("teacher-3-class-progress")
    xlsx = page.page.request.get(page.base_url + page.page.get_attribute("a[href$='progress.xlsx']", "href"))
    assert xlsx.status == 200 and xlsx.body()[:2] == b"PK"

    page.goto("/teacher/group")
    page.page.select_option('select[name="activity_id"]', label=page.page.locator(
        'select[name="activity_id"] option', has_text="深圳湾红树林研学").inner_text())
    assert page.page.locator('input[name="student_id"]:checked').count() == 3
    with page.page.expect_navigation():
        page.page.click("form.js-once button[type=submit]")
    assert "签到完成：成功 3 人" in page.page.inner_text(".flash")
    page.check("teacher-4-group-checkin")


def _certificate_png() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (320, 220), "#fff8e1")
    draw = ImageDraw.Draw(image)
    draw.rectangle((8, 8, 311, 211), outline="#c62828", width=6)
    draw.rectangle((120, 150, 200, 190), fill="#c62828")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _credited_stay(staff, student, activity, start, minutes):
    """An entry and an exit scanned by venue staff (as an offline scanner uploads them)."""
    token = codes.student_pass(student.id, student.pass_version)
    for direction, when in (("entry", start), ("exit", start + timedelta(minutes=minutes))):
        nonce = str(uuid.uuid4())
        body = {"student_pass": token, "activity_id": activity.id, "direction": direction, "nonce": nonce}
        scan(ScanRequest(actor=staff, source="staff", student_pass=token, activity_id=activity.id,
                         direction=direction, nonce=nonce, scanned_at=when, body=body), now=when + timedelta(minutes=1))


def test_bureau_dashboard_renders_its_charts(open_page, data):
    with data():
        east = f.district(name="东湖区")
        west = f.district(name="西岭区")
        big = f.school_class(f.school(east, name="东湖实验学校"), grade=5, name="五年级(1)班")
        small = f.school_class(f.school(west, name="西岭小学"), grade=3, name="三年级(1)班")
        # Venue kinds no other browser test uses: the venue index hides cells per venue kind.
        museum = f.venue(east, name="东湖科技馆", kind="enterprise_hall", level="city")
        base = f.venue(west, name="西岭科普基地", kind="science_base", level="district")
        start = utcnow() - timedelta(hours=30)
        visit = f.activity(museum, kind="visit", title="常设展参观", starts_at=start, ends_at=start + timedelta(hours=8))
        lecture = f.activity(base, kind="lecture", title="红树林讲座", starts_at=start, ends_at=start + timedelta(hours=8))
        staff = f.user("venue_staff", venues=[museum, base])
        for n in range(7):
            _credited_stay(staff, f.student(big, name=f"东湖学生{n}"), visit, start + timedelta(minutes=5 + n), 95)
        for n in range(3):  # fewer than five pupils: every number about them is hidden
            _credited_stay(staff, f.student(small, name=f"西岭学生{n}"), lecture, start + timedelta(minutes=5 + n), 50)
        officer = f.user("city_officer", username=f"e2e-city-{east.id}")

    page = open_page()
    page.login(officer.username, None)
    assert page.page.url.endswith("/bureau")
    charts = page.page.locator("svg.chart-svg")
    assert charts.count() >= 6
    place_chart = page.page.locator("figure.chart").first
    text = place_chart.inner_text()
    assert "东湖区" in text and "西岭区" in text
    west_row = place_chart.locator("g.chart-row", has_text="西岭区")
    assert "suppressed" in west_row.get_attribute("class")
    assert "不公开" in west_row.text_content()
    east_row = place_chart.locator("g.chart-row", has_text="东湖区")
    assert "100%" in east_row.text_content()
    assert "东湖科技馆" in page.page.locator("table.data-table").first.inner_text()
    page.check("bureau-1-dashboard")
    xlsx = page.page.request.get(page.base_url + page.page.get_attribute("a[href*='/bureau/export/district.xlsx']", "href"))
    assert xlsx.status == 200
    assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")

    desktop = open_page(viewport={"width": 1280, "height": 900})
    desktop.login(officer.username, None)
    desktop.page.select_option('select[name="district_id"]', label="东湖区")
    desktop.page.wait_for_url("**district_id=*")
    assert "东湖实验学校" in desktop.page.locator("figure.chart").first.inner_text()
    desktop.check("bureau-2-dashboard-desktop-district")
