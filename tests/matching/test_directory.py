"""The public directory: filters, seats left, venues, the web page — and that nothing about pupils leaks."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from app.db import utcnow
from app.matching import bookings
from tests import factories as f
from tests.matching.helpers import soon, staff_entry

ACTIVITY_KEYS = {"id", "title", "kind", "kind_label", "theme", "starts_at", "ends_at", "min_minutes", "grades",
                 "capacity", "seats_left", "full", "venue"}
VENUE_KEYS = {"id", "name", "kind", "kind_label", "level", "level_label", "district_id", "district_name", "address",
              "latitude", "longitude"}


@pytest.fixture
def menu(ctx):
    nanshan, futian = f.district("南山区"), f.district("福田区")
    museum = f.venue(nanshan, kind="science_museum", level="provincial", name="南山科技馆", latitude=22.53,
                     longitude=113.93)
    base = f.venue(futian, kind="science_base", level="city", name="福田科普基地")
    closed = f.venue(futian, name="暂停开放的馆", active=False)
    start, end = soon(24)
    acts = {
        "workshop": f.activity(museum, kind="workshop", starts_at=start, ends_at=end, capacity=3, theme="人工智能",
                               title="AI 实验工作坊", grades=[5, 6, 7, 8, 9]),
        "visit": f.activity(base, kind="visit", starts_at=start + timedelta(days=3), ends_at=end + timedelta(days=3),
                            theme="航天", title="航天展参观"),
        "little": f.activity(base, kind="lecture", starts_at=start + timedelta(days=5),
                             ends_at=end + timedelta(days=5), grades=[1, 2], theme="生命科学", title="小小生物学家"),
        "later": f.activity(museum, kind="research", starts_at=start + timedelta(days=45),
                            ends_at=end + timedelta(days=45), theme="海洋", title="红树林研学"),
        "past": f.activity(museum, kind="visit", starts_at=utcnow() - timedelta(days=2),
                           ends_at=utcnow() - timedelta(days=2) + timedelta(hours=3), title="已结束的活动"),
        "hidden": f.activity(closed, kind="visit", starts_at=start, ends_at=end, title="暂停场馆的活动"),
    }
    return {"nanshan": nanshan, "futian": futian, "museum": museum, "base": base, **acts}


def titles(res):
    assert res.status_code == 200, res.json
    return [item["title"] for item in res.json["items"]]


def test_upcoming_activities_without_login(client, menu):
    res = client.get("/api/v1/directory/activities")
    assert titles(res) == ["AI 实验工作坊", "航天展参观", "小小生物学家"]  # 30 days ahead, soonest first
    assert res.headers["Cache-Control"] == "public, max-age=60"
    first = res.json["items"][0]
    assert set(first) == ACTIVITY_KEYS and set(first["venue"]) == VENUE_KEYS
    assert first["kind_label"] == "实验/工作坊" and first["venue"]["level_label"] == "省级"
    assert first["venue"]["district_name"] == "南山区" and first["seats_left"] == 3 and first["full"] is False
    assert res.json["items"][1]["seats_left"] is None  # no capacity: not limited


def test_filters(client, menu):
    get = lambda q: titles(client.get(f"/api/v1/directory/activities?{q}"))  # noqa: E731
    assert get(f"district_id={menu['futian'].id}") == ["航天展参观", "小小生物学家"]
    assert get("grade=5") == ["AI 实验工作坊", "航天展参观"]
    assert get("grade=1") == ["航天展参观", "小小生物学家"]
    assert get("kind=workshop") == ["AI 实验工作坊"]
    assert get("theme=航天") == ["航天展参观"]
    assert get("theme=%25") == []  # a LIKE wildcard is a plain character
    later = (utcnow() + timedelta(days=40)).date().isoformat()
    assert get(f"from={later}&to={(utcnow() + timedelta(days=60)).date().isoformat()}") == ["红树林研学"]
    assert get(f"venue_id={menu['museum'].id}&to={later}") == ["AI 实验工作坊"]
    assert client.get("/api/v1/directory/activities?grade=10").status_code == 422
    assert client.get("/api/v1/directory/activities?kind=party").status_code == 422
    too_long = client.get(f"/api/v1/directory/activities?to={(utcnow() + timedelta(days=400)).date().isoformat()}")
    assert too_long.status_code == 422 and "to" in too_long.json["error"]["details"]["fields"]


def test_seats_left_count_bookings_and_walk_ins(client, menu):
    act = menu["workshop"]
    guardian = f.user("guardian", children=[f.student(f.school_class(grade=5))])
    bookings.book_student(actor=guardian, activity=act, student=f.student(f.school_class(grade=6)))
    klass = f.school_class(grade=7)
    f.student(klass)
    teacher = f.user("teacher", classes=[klass])
    bookings.book_class(actor=teacher, activity=act, klass=klass, seats=1)
    res = client.get("/api/v1/directory/activities?kind=workshop")
    assert res.json["items"][0]["seats_left"] == 1
    # the session starts; one pupil walks in and takes the last seat
    act.starts_at = utcnow() - timedelta(minutes=5)
    staff = f.user("venue_staff", venues=[menu["museum"]])
    assert staff_entry(staff, f.student(f.school_class(grade=8)), act).status == 201
    item = client.get("/api/v1/directory/activities?kind=workshop").json["items"][0]
    assert item["seats_left"] == 0 and item["full"] is True
    assert client.get("/api/v1/directory/activities?kind=workshop&available=true").json["items"] == []


def test_venues(client, menu):
    res = client.get("/api/v1/directory/venues")
    assert res.status_code == 200
    by_name = {v["name"]: v for v in res.json["items"]}
    assert set(by_name) == {"南山科技馆", "福田科普基地"}  # the inactive venue is not listed
    museum = by_name["南山科技馆"]
    assert set(museum) == VENUE_KEYS | {"themes", "upcoming_activities"}
    assert museum["themes"] == ["人工智能", "海洋"] and museum["upcoming_activities"] == 2
    assert (museum["latitude"], museum["longitude"]) == (22.53, 113.93)
    futian = client.get(f"/api/v1/directory/venues?district_id={menu['futian'].id}").json
    assert [v["name"] for v in futian["items"]] == ["福田科普基地"] and futian["total"] == 1
    districts = client.get("/api/v1/directory/districts").json["items"]
    assert {d["name"] for d in districts} >= {"南山区", "福田区"}


def _keys(value, found=None):
    found = set() if found is None else found
    if isinstance(value, dict):
        for key, inner in value.items():
            found.add(key)
            _keys(inner, found)
    elif isinstance(value, list):
        for inner in value:
            _keys(inner, found)
    return found


def test_directory_leaks_nothing_about_pupils(client, menu):
    school = f.school(name="保密实验学校")
    klass = f.school_class(school, grade=6, name="6年级(9)班")
    pupil = f.student(klass, name="李秘密", number="SECRET-0042")
    guardian = f.user("guardian", children=[pupil])
    bookings.book_student(actor=guardian, activity=menu["workshop"], student=pupil)
    teacher = f.user("teacher", classes=[klass], school_=school)
    bookings.book_class(actor=teacher, activity=menu["visit"], klass=klass, seats=1)
    walk_in = f.student(klass, name="王路过", number="SECRET-0043")
    menu["visit"].starts_at = utcnow() - timedelta(minutes=5)
    staff_entry(f.user("venue_staff", venues=[menu["base"]]), walk_in, menu["visit"])
    pages = [
        client.get("/api/v1/directory/activities"),
        client.get("/api/v1/directory/venues"),
        client.get("/api/v1/directory/districts"),
        client.get("/directory"),
    ]
    for res in pages:
        assert res.status_code == 200
        text = res.get_data(as_text=True)
        for secret in ("李秘密", "王路过", "SECRET-00", "保密实验学校", "6年级(9)班", teacher.username, guardian.username):
            assert secret not in text
    allowed = ACTIVITY_KEYS | VENUE_KEYS | {"items", "page", "per_page", "total", "from", "to", "themes",
                                             "upcoming_activities"}
    for res in pages[:3]:
        assert _keys(res.json) <= allowed, _keys(res.json) - allowed
    assert "student" not in json.dumps(pages[0].json)


def test_directory_page(client, menu):
    res = client.get("/directory?grade=5")
    assert res.status_code == 200 and res.mimetype == "text/html"
    html = res.get_data(as_text=True)
    assert '<html lang="zh-CN">' in html and 'name="viewport"' in html
    assert "AI 实验工作坊" in html and "航天展参观" in html and "小小生物学家" not in html  # grade 1–2 only
    assert "南山区" in html and "福田区" in html and 'href="#district-' in html  # grouped by district
    assert "剩余 3 个名额" in html and "不限名额" in html
    assert "<script" not in html and "style=" not in html  # the CSP forbids inline script and style
    assert 'option value="5" selected' in html
    css = html.split('rel="stylesheet" href="')[1].split('"')[0]
    assert client.get(css).status_code == 200
    assert "/login?next=" in html
    filtered = client.get(f"/directory?district_id={menu['nanshan'].id}&kind=workshop").get_data(as_text=True)
    assert "AI 实验工作坊" in filtered and "航天展参观" not in filtered


def test_directory_page_survives_bad_input(client, menu):
    res = client.get("/directory?grade=99&from=not-a-date&kind=workshop")
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert "AI 实验工作坊" in html and 'class="errors"' in html
    empty = client.get("/directory?theme=不存在的主题")
    assert "没有符合条件的活动" in empty.get_data(as_text=True)
