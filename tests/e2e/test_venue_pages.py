"""Venue staff pages in a real browser: the full-screen display rotates to a new code by itself; the
pass scanner queues three passes while the network is cut and uploads them when it returns."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.checkins.models import Checkin
from app.db import utcnow
from app.venues import codes
from tests import factories as f


@pytest.fixture
def venue_city(data):
    with data():
        museum = f.venue(name="深圳自然博物馆", kind="museum", level="provincial")
        activity = f.activity(museum, kind="visit", title="自然展厅参观 · 海洋",
                              starts_at=utcnow() - timedelta(hours=2), ends_at=utcnow() + timedelta(hours=6))
        staff = f.user("venue_staff", username=f"e2e-staff-{museum.id}", venues=[museum])
        klass = f.school_class(grade=4, name="四年级(3)班")
        pupils = [f.student(klass, name=name) for name in ("王小明", "李雷", "韩梅梅")]
        passes = [codes_pass(p) for p in pupils]
        return {"activity_id": activity.id, "staff": staff.username, "pupils": [p.id for p in pupils],
                "passes": passes}


def codes_pass(student) -> str:
    return codes.student_pass(student.id, student.pass_version)


def test_display_page_rotates_to_a_new_code(open_page, venue_city, monkeypatch):
    monkeypatch.setattr(codes, "WINDOW_SECONDS", 3)  # a 3-second window: the same logic, a short wait
    page = open_page(viewport={"width": 1280, "height": 800})
    page.login(venue_city["staff"], None)
    assert page.page.url.endswith("/venue")
    page.check("venue-0-home")
    with page.page.expect_navigation():
        page.page.click(f'[data-activity-id="{venue_city["activity_id"]}"] a.btn-entry')
    display = page.page.locator("#display")
    page.page.wait_for_function("() => document.getElementById('display').dataset.token")
    first = display.get_attribute("data-token")
    assert page.page.inner_text(".display-direction") == "签到"
    page.check("venue-1-display-entry", full_page=False)
    page.page.wait_for_function(
        "first => { const t = document.getElementById('display').dataset.token; return t && t !== first; }",
        arg=first, timeout=10_000,
    )
    second = display.get_attribute("data-token")
    assert second != first
    assert page.page.get_attribute("#qr", "data-token") == second
    assert page.page.evaluate("() => document.getElementById('qr').naturalWidth") > 0
    assert ":" in page.page.inner_text("#clock")
    page.check("venue-2-display-rotated", full_page=False)


def test_offline_scanner_queues_three_passes_and_uploads_them_when_back_online(open_page, venue_city, data):
    page = open_page()
    page.login(venue_city["staff"], None)
    page.goto(f"/venue/scan?activity_id={venue_city['activity_id']}")
    page.page.wait_for_selector('#scanner[data-ready="1"]')
    page.page.context.set_offline(True)
    page.page.wait_for_function("() => !navigator.onLine")
    field = page.page.locator("#pass-input")
    for token in venue_city["passes"]:
        field.fill(token)
        field.press("Enter")
    assert page.page.inner_text("#queue-count") == "3"
    assert "离线" in page.page.inner_text("#net-status")
    page.check("venue-3-scanner-offline-queued")
    with data() as session:
        assert session.scalars(select(Checkin).where(Checkin.student_id.in_(venue_city["pupils"]))).all() == []

    page.page.context.set_offline(False)
    page.page.wait_for_function("() => document.getElementById('queue-count').textContent === '0'")
    page.page.wait_for_function("() => document.querySelectorAll('#results li.ok').length === 3")
    texts = page.page.locator("#results li.ok").all_inner_texts()
    assert all("签到成功" in t for t in texts)
    assert any("王*明" in t for t in texts)
    page.check("venue-4-scanner-uploaded")
    with data() as session:
        stays = session.scalars(select(Checkin).where(Checkin.student_id.in_(venue_city["pupils"]))).all()
        assert len(stays) == 3
        assert {s.source for s in stays} == {"staff"}
        assert {s.status for s in stays} == {"open"}
