"""Recommendations: the SPEC §12 order (missing kind, credits toward the requirement, eligibility and
seats, distance, date), the reason on each, and who may ask."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.extensions import db
from app.matching import bookings
from app.matching.recommend import recommendations
from tests import factories as f
from tests.matching.helpers import credit, soon

NEAR = (22.545, 113.935)
FAR = (22.72, 114.25)  # about 36 km away


@pytest.fixture
def town(ctx):
    district = f.district("南山区")
    school = f.school(district, latitude=22.54, longitude=113.93)
    near = f.venue(district, level="city", name="近处科技馆", latitude=NEAR[0], longitude=NEAR[1])
    far = f.venue(district, level="city", name="远处科普基地", latitude=FAR[0], longitude=FAR[1])
    return {"district": district, "school": school, "near": near, "far": far}


def pupil_in(town, grade):
    return f.student(f.school_class(town["school"], grade=grade))


def at(venue, kind, hours, **extra):
    start, end = soon(hours, extra.pop("length", 3))
    return f.activity(venue, kind=kind, starts_at=start, ends_at=end, title=extra.pop("title", f"{kind}@{venue.name}"),
                      **extra)


def titles(result):
    return [item["title"] for item in result["items"]]


def test_a_pupil_missing_a_workshop_sees_workshops_first(town):
    pupil = pupil_in(town, 8)  # grade 7–9: 10.0 credits, 3 kinds, one of them workshop/research/competition
    for kind, amount in (("visit", "2.00"), ("lecture", "1.00"), ("volunteer", "1.00")):
        credit(pupil, kind, amount)
    provincial = f.venue(town["district"], level="provincial", latitude=NEAR[0], longitude=NEAR[1])
    at(provincial, "visit", 20, title="近处的参观")          # more credits, nearer, sooner
    at(town["near"], "lecture", 22, title="近处的讲座")
    at(town["far"], "workshop", 24 * 6, title="远处的工作坊")
    result = recommendations(pupil)
    assert result["progress"]["missing"]["one_of"] == ["workshop", "research", "competition"]
    first = result["items"][0]
    assert first["title"] == "远处的工作坊" and first["kind"] == "workshop" and first["rank"] == 1
    assert first["reason"].startswith("还差一项实验/工作坊类活动")
    assert first["reason_code"] == "required_kind" and "距学校约" in first["reason"]
    assert titles(result)[1:] == ["近处的参观", "近处的讲座"]  # then credits toward the requirement: 2.40, 1.00
    assert result["items"][1]["estimated_credits"] == "2.40" and result["items"][1]["reason_code"] == "credits"


def test_a_missing_kind_comes_first(town):
    pupil = pupil_in(town, 5)  # grade 5–6: 8.0 credits and 2 kinds
    credit(pupil, "visit", "2.00")
    at(town["near"], "visit", 20, title="又一次参观")
    at(town["far"], "lecture", 48, title="一场讲座")
    items = recommendations(pupil)["items"]
    assert [i["title"] for i in items] == ["一场讲座", "又一次参观"]
    assert items[0]["reason"].startswith("还差 1 类活动，讲座是你还没参加过的类型")


def test_ineligible_grades_full_and_booked_activities_are_never_recommended(town):
    pupil = pupil_in(town, 8)
    at(town["near"], "workshop", 20, title="只给三四年级", grades=[3, 4])
    full = at(town["near"], "workshop", 22, title="已经满了", capacity=1)
    other = f.student(f.school_class(town["school"], grade=8))
    bookings.book_student(actor=f.user("guardian", children=[other]), activity=full, student=other)
    booked = at(town["near"], "workshop", 26, title="已经预约了")
    bookings.book_student(actor=f.user("guardian", children=[pupil]), activity=booked, student=pupil)
    trip = at(town["near"], "workshop", 28, title="班级已经预约", capacity=40)
    teacher = f.user("teacher", classes=[pupil.school_class])
    bookings.book_class(actor=teacher, activity=trip, klass=pupil.school_class, seats=1)  # a parent would book a 2nd seat
    at(town["near"], "workshop", 30, title="还有名额", capacity=5)
    ended_soon = at(town["near"], "workshop", -5, title="已经结束", length=1)
    assert ended_soon.ends_at < bookings.utcnow()
    assert titles(recommendations(pupil)) == ["还有名额"]
    inactive = pupil_in(town, 8)
    inactive.active = False
    assert recommendations(inactive)["items"] == []


def test_nearer_then_sooner_when_the_gap_is_the_same(town):
    pupil = pupil_in(town, 5)
    credit(pupil, "visit", "2.00")
    credit(pupil, "lecture", "1.00")
    at(town["far"], "workshop", 20, title="远的")
    at(town["near"], "workshop", 40, title="近的，晚一点")
    at(town["near"], "workshop", 30, title="近的，早一点")
    no_coordinates = f.venue(town["district"], level="city", name="没有坐标的场馆")
    at(no_coordinates, "workshop", 10, title="不知道多远")
    items = recommendations(pupil)["items"]
    assert [i["title"] for i in items] == ["近的，早一点", "近的，晚一点", "远的", "不知道多远"]
    assert items[0]["distance_km"] < 2 and 30 < items[2]["distance_km"] < 45 and items[3]["distance_km"] is None


def test_credits_toward_the_requirement_are_counted_up_to_the_gap(town):
    pupil = pupil_in(town, 5)
    credit(pupil, "visit", "2.00")
    credit(pupil, "lecture", "1.00")  # 3.00 of 8.00: 5.00 missing
    provincial = f.venue(town["district"], level="provincial", latitude=FAR[0], longitude=FAR[1])
    district_level = f.venue(town["district"], level="district", latitude=NEAR[0], longitude=NEAR[1])
    at(provincial, "lecture", 30, title="省级讲座（远）")
    at(district_level, "lecture", 30, title="区级讲座（近）")
    items = recommendations(pupil)["items"]
    assert [(i["title"], i["toward_requirement"]) for i in items] == [("省级讲座（远）", "1.20"), ("区级讲座（近）", "0.80")]
    assert items[0]["reason"].startswith("可得约 1.20 学分，离年度要求还差 5.00 学分")
    credit(pupil, "workshop", "4.50")  # 0.50 missing: both lectures close the gap alike, the nearer wins
    items = recommendations(pupil)["items"]
    assert [(i["title"], i["toward_requirement"]) for i in items] == [("区级讲座（近）", "0.50"), ("省级讲座（远）", "0.50")]
    credit(pupil, "workshop", "1.00")  # requirement met: still recommended, for interest
    assert recommendations(pupil)["items"][0]["reason_code"] == "enrichment"


def test_a_venue_already_credited_three_times_this_term_comes_last(town):
    pupil = pupil_in(town, 5)
    credit(pupil, "lecture", "1.00")
    for _ in range(3):
        credit(pupil, "visit", "1.00", venue=town["near"])
    at(town["near"], "workshop", 20, title="常去的场馆")
    at(town["far"], "workshop", 40, title="新场馆")
    items = recommendations(pupil)["items"]
    assert [i["title"] for i in items] == ["新场馆", "常去的场馆"]
    assert items[1]["reason_code"] == "venue_cap" and items[1]["estimated_credits"] == "0.00"
    assert "已计满 3 次" in items[1]["reason"]


def test_who_may_ask_and_the_audit(client, town):
    klass = f.school_class(town["school"], grade=5)
    pupil = f.student(klass)
    at(town["near"], "workshop", 20, title="推荐给你")
    parent = f.user("guardian", children=[pupil])
    teacher = f.user("teacher", school_=town["school"], classes=[klass])
    url = f"/api/v1/students/{pupil.id}/recommendations"
    for account in (parent, teacher, f.student_user(pupil), f.user("school_admin", school_=town["school"])):
        res = client.get(url, headers=f.bearer(account))
        assert res.status_code == 200, res.json
        assert res.json["items"][0]["title"] == "推荐给你" and res.json["items"][0]["reason"]
    assert client.get(url, headers=f.bearer(f.user("guardian"))).status_code == 404
    assert client.get(url, headers=f.bearer(f.user("teacher", school_=town["school"]))).status_code == 404
    assert client.get(url, headers=f.bearer(f.user("venue_staff"))).status_code == 403
    assert client.get(url + "?limit=0", headers=f.bearer(parent)).status_code == 422
    readers = db.session.scalars(
        select(AuditEntry.actor_role).where(AuditEntry.student_id == pupil.id, AuditEntry.action == "recommendations")
    ).all()
    assert sorted(readers) == ["school_admin", "teacher"]  # the pupil and the parent are not recorded


def test_window_and_limit(town):
    pupil = pupil_in(town, 5)
    for n in range(5):
        at(town["near"], "lecture", 24 * (n + 1), title=f"讲座 {n}")
    at(town["near"], "lecture", 24 * 45, title="下个月以后")
    result = recommendations(pupil, limit=3)
    assert titles(result) == ["讲座 0", "讲座 1", "讲座 2"]
    later = recommendations(pupil, start=bookings.utcnow() + timedelta(days=40))
    assert titles(later) == ["下个月以后"]


def test_one_session_per_programme_and_new_kinds_first_once_the_requirement_is_met(town):
    pupil = pupil_in(town, 3)  # grade 3–4: 6.0 credits and 2 kinds
    credit(pupil, "visit", "4.00")
    credit(pupil, "lecture", "2.00")
    for day in range(4):
        at(town["near"], "lecture", 24 * (day + 1), title="每日科学讲堂")
    at(town["far"], "volunteer", 24 * 6, title="科普志愿讲解")
    items = recommendations(pupil)["items"]
    assert [(i["title"], i["more_sessions"]) for i in items] == [("科普志愿讲解", 0), ("每日科学讲堂", 3)]
    assert items[0]["reason"].startswith("已达到年度要求，还可以尝试科普志愿服务")
    assert items[1]["reason"].startswith("已达到年度要求，可以继续探索航天")
    assert [i["rank"] for i in items] == [1, 2]
