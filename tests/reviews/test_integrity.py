"""Integrity flags (SPEC §4.3): what must be flagged, and the legitimate cases that must not be."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.checkins import service
from app.credits.models import LedgerEntry
from app.reviews.models import Review
from app.venues import codes
from tests import factories as f

T0 = datetime(2026, 11, 17, 2, 0, tzinfo=UTC)  # Tuesday 10:00 in Shanghai


def scan(actor, source, activity, direction="entry", at=T0, device=None, student=None):
    token = codes.venue_code(activity.id, direction, at).token
    body = {"code": token, "nonce": str(uuid.uuid4()), "student_id": student.id if student else None}
    req = service.ScanRequest(actor=actor, source=source, code=token, nonce=body["nonce"], body=body,
                              device_id=device, student_id=student.id if student else None)
    return service.scan(req, now=at)


@pytest.fixture
def setting(ctx):
    klass = f.school_class(grade=5)
    # 深圳科学技术馆 (福田) and 大鹏 (about 50 km east)
    museum = f.venue(kind="science_museum", level="city", latitude=22.5405, longitude=114.0550)
    far = f.venue(kind="science_base", level="city", latitude=22.5960, longitude=114.5050)
    near = f.venue(kind="museum", level="city", latitude=22.5430, longitude=114.0600)
    day = dict(starts_at=T0 - timedelta(hours=1), ends_at=T0 + timedelta(hours=8))
    return {
        "class": klass,
        "pupils": [f.student(klass) for _ in range(4)],
        "museum": f.activity(museum, kind="visit", **day),
        "far": f.activity(far, kind="visit", **day),
        "near": f.activity(near, kind="visit", **day),
        "teacher": f.user("teacher", school_=klass and f.school(), classes=[klass]),
    }


def test_third_pupil_on_one_device_is_flagged(setting):
    accounts = [f.student_user(p) for p in setting["pupils"][:4]]
    results = [scan(a, "self", setting["museum"], device="phone-1", at=T0 + timedelta(minutes=i))
               for i, a in enumerate(accounts)]
    assert [r.body["checkin"]["status"] for r in results] == ["open", "open", "flagged", "flagged"]
    flags = results[2].body["checkin"]["flags"]
    assert flags[0]["code"] == "shared_device" and "3 名不同学生" in flags[0]["message"]


def test_shared_device_window_is_ten_minutes(setting):
    accounts = [f.student_user(p) for p in setting["pupils"][:3]]
    scan(accounts[0], "self", setting["museum"], device="phone-2", at=T0)
    scan(accounts[1], "self", setting["museum"], device="phone-2", at=T0 + timedelta(minutes=1))
    later = scan(accounts[2], "self", setting["museum"], device="phone-2", at=T0 + timedelta(minutes=12))
    assert later.body["checkin"]["status"] == "open"


def test_guardian_checking_in_siblings_is_not_flagged(setting):
    kids = setting["pupils"][:3]
    parent = f.user("guardian", children=kids)
    results = [scan(parent, "guardian", setting["museum"], device="family-phone", student=k) for k in kids]
    assert all(r.body["checkin"]["status"] == "open" and not r.body["checkin"]["flags"] for r in results)


def test_group_checkin_of_forty_pupils_is_not_flagged(setting, client):
    klass = setting["class"]
    pupils = [f.student(klass) for _ in range(40)]
    teacher = f.user("teacher", school_=pupils[0].school, classes=[klass])
    act = f.activity(f.venue(latitude=22.5, longitude=114.0), kind="visit",
                     starts_at=datetime.now(UTC) - timedelta(hours=1), ends_at=datetime.now(UTC) + timedelta(hours=5))
    res = client.post(f"/api/v1/activities/{act.id}/group-checkins", headers={**f.bearer(teacher), "X-Device-Id": "t"},
                      json={"student_ids": [p.id for p in pupils], "direction": "entry"})
    assert res.status_code == 200
    assert [r["checkin"]["status"] for r in res.json["results"]] == ["open"] * 40


def test_staff_uploading_a_morning_of_passes_at_noon_is_not_flagged(setting):
    museum = setting["museum"]
    staff = f.user("venue_staff", venues=[museum.venue])
    noon = T0 + timedelta(hours=2)
    for i, pupil in enumerate(setting["pupils"]):
        token = codes.student_pass(pupil.id, 1)
        at = T0 + timedelta(minutes=5 * i)
        body = {"student_pass": token, "n": i}
        req = service.ScanRequest(actor=staff, source="staff", student_pass=token, activity_id=museum.id,
                                  direction="entry", scanned_at=at, body=body, device_id="venue-scanner")
        result = service.scan(req, now=noon)
        assert result.status == 201 and result.body["checkin"]["status"] == "open"


def test_impossible_travel_is_flagged_and_a_short_hop_is_not(setting):
    pupil = setting["pupils"][0]
    account = f.student_user(pupil)
    scan(account, "self", setting["museum"], at=T0)
    scan(account, "self", setting["museum"], "exit", at=T0 + timedelta(minutes=40))
    hop = scan(account, "self", setting["near"], at=T0 + timedelta(minutes=50))  # 0.6 km in 10 min
    assert hop.body["checkin"]["status"] == "open"
    scan(account, "self", setting["near"], "exit", at=T0 + timedelta(minutes=90))
    jump = scan(account, "self", setting["far"], at=T0 + timedelta(minutes=100))  # ~46 km in 10 min
    assert jump.body["checkin"]["status"] == "flagged"
    assert jump.body["checkin"]["flags"][0]["code"] == "impossible_travel"


def test_flagged_stay_earns_nothing_until_approved(setting, db_session):
    accounts = [f.student_user(p) for p in setting["pupils"][:3]]
    for i, a in enumerate(accounts):
        scan(a, "self", setting["museum"], device="phone-3", at=T0 + timedelta(seconds=i))
    leave = scan(accounts[2], "self", setting["museum"], "exit", at=T0 + timedelta(minutes=65))
    assert leave.status == 201 and leave.body["checkin"]["status"] == "flagged" and leave.body["credit"] is None
    pupil = setting["pupils"][2]
    assert db_session.scalar(select(LedgerEntry).where(LedgerEntry.student_id == pupil.id)) is None
    review = db_session.scalar(select(Review).where(Review.student_id == pupil.id))
    assert review.status == "pending" and review.reasons[0]["code"] == "shared_device"
