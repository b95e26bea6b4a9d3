"""The web pages' plumbing without a browser (Flask's test client on the e2e app): session cookie
flags, CSRF on every form and none on the JSON API, safe `next`, GET /s/{token} changing nothing, a
double tap being a replay, the session ending with the account's token generation, and the login
failure limit shared with the API."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.checkins.models import Checkin, Scan
from app.db import utcnow
from tests import factories as f

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def client(live_app):
    return live_app.test_client()


def _csrf(client, path="/login") -> str:
    return TOKEN.search(client.get(path).get_data(as_text=True)).group(1)


def _login(client, username, next_url=None):
    form = {"username": username, "password": f.PASSWORD, "csrf_token": _csrf(client)}
    if next_url:
        form["next"] = next_url
    return client.post("/login", data=form)


def _student(data):
    with data():
        museum = f.venue(name="宝安科技馆")
        activity = f.activity(museum, kind="visit", title="常设展厅参观",
                              starts_at=utcnow() - timedelta(hours=1), ends_at=utcnow() + timedelta(hours=4))
        pupil = f.student(f.school_class(grade=4), name="黄一诺")
        account = f.student_user(pupil)
        return account.username, account.id, activity.id, pupil.id


def test_session_cookie_is_httponly_and_samesite(client, data):
    username, *_ = _student(data)
    response = _login(client, username)
    assert response.status_code == 302 and response.headers["Location"] == "/student"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_forms_need_the_csrf_token_and_the_api_does_not(client, data):
    username, *_ = _student(data)
    refused = client.post("/login", data={"username": username, "password": f.PASSWORD})
    assert refused.status_code == 400
    assert "页面已过期" in refused.get_data(as_text=True)
    api = client.post("/api/v1/auth/login", json={"username": username, "password": f.PASSWORD})
    assert api.status_code == 200 and "access_token" in api.json


def test_wrong_password_is_refused_in_chinese(client, data):
    username, *_ = _student(data)
    response = client.post("/login", data={"username": username, "password": "wrong-one",
                                           "csrf_token": _csrf(client)})
    assert response.status_code == 401
    assert "用户名或密码错误" in response.get_data(as_text=True)


@pytest.mark.parametrize("target, expected", [
    ("/student?tab=1", "/student?tab=1"),
    ("//evil.example/x", "/student"),
    ("https://evil.example/", "/student"),
    ("/\\evil.example", "/student"),
])
def test_login_returns_only_to_pages_of_this_site(client, data, target, expected):
    username, *_ = _student(data)
    assert _login(client, username, next_url=target).headers["Location"] == expected


def test_pages_send_strangers_to_login_and_other_roles_away(client, data):
    assert client.get("/teacher").headers["Location"] == "/login?next=/teacher"
    username, *_ = _student(data)
    _login(client, username)
    refused = client.get("/teacher")
    assert refused.status_code == 403
    assert "不能打开这个页面" in refused.get_data(as_text=True)


def test_scan_page_get_changes_nothing_and_a_double_tap_is_a_replay(client, data, code_url):
    username, _, activity_id, student_id = _student(data)
    _login(client, username)
    url = code_url(activity_id, "entry").split("127.0.0.1", 1)[1].split("/", 1)[1]
    with data() as session:
        before = session.scalar(select(func.count()).select_from(Scan))
    page = client.get("/" + url)
    assert page.status_code == 200 and "确认签到" in page.get_data(as_text=True)
    with data() as session:
        assert session.scalar(select(func.count()).select_from(Scan)) == before
    html = page.get_data(as_text=True)
    form = {"csrf_token": TOKEN.search(html).group(1), "nonce": re.search(r'name="nonce" value="([^"]+)"', html).group(1),
            "device_id": "web-test-device"}
    first = client.post("/" + url, data=form)
    second = client.post("/" + url, data=form)  # the same form sent twice
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    with data() as session:
        assert session.scalar(select(func.count()).select_from(Checkin).where(Checkin.student_id == student_id)) == 1
    result = client.get(first.headers["Location"]).get_data(as_text=True)
    assert "签到成功" in result


def test_a_bad_code_is_explained_without_logging_in(client):
    page = client.get("/s/not-a-real-code")
    assert page.status_code == 200
    assert "二维码无效" in page.get_data(as_text=True)


def test_raising_the_token_generation_ends_the_browser_session(client, data):
    username, user_id, *_ = _student(data)
    _login(client, username)
    assert client.get("/student").status_code == 200
    with data() as session:
        from app.auth.models import User

        session.get(User, user_id).token_generation += 1
    assert client.get("/student").headers["Location"].startswith("/login")


def test_web_and_api_login_failures_share_one_limit(live_app, data):
    from app import create_app
    from app.extensions import db, limiter
    from tests.e2e.conftest import E2EConfig

    username, *_ = _student(data)
    was = limiter.enabled
    strict = create_app(type("Strict", (E2EConfig,), {"RATELIMIT_ENABLED": True,
                                                      "LOGIN_FAILURES_PER_USERNAME": "2 per 15 minutes"}))
    try:
        client = strict.test_client()
        for _ in range(2):
            wrong = client.post("/login", data={"username": username, "password": "nope",
                                                "csrf_token": _csrf(client)})
            assert wrong.status_code == 401
        api = client.post("/api/v1/auth/login", json={"username": username, "password": f.PASSWORD})
        assert api.status_code == 429
        page = client.post("/login", data={"username": username, "password": f.PASSWORD, "csrf_token": _csrf(client)})
        assert page.status_code == 429 and "尝试次数过多" in page.get_data(as_text=True)
    finally:
        limiter.enabled = was
        with strict.app_context():
            db.engine.dispose()


def test_forms_work_over_https_without_a_referer(live_app, data):
    """Behind TLS the pages send Referrer-Policy: no-referrer, so a form post carries no Referer."""
    username, *_ = _student(data)
    client = live_app.test_client()
    page = client.get("/login", base_url="https://ledger.example.test")
    assert page.headers["Referrer-Policy"] == "no-referrer"
    token = TOKEN.search(page.get_data(as_text=True)).group(1)
    response = client.post("/login", base_url="https://ledger.example.test",
                           data={"username": username, "password": f.PASSWORD, "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/student"


def test_a_parent_appeals_a_rejection_from_the_home_page(client, data):
    from app.reviews import service as reviews
    from app.reviews.models import Review
    from tests.e2e.test_school_and_bureau_pages import _self_scan

    with data() as session:
        klass = f.school_class(grade=5)
        activity = f.activity(f.venue(name="福田科普基地"), kind="lecture", title="天文讲座",
                              starts_at=utcnow() - timedelta(hours=3), ends_at=utcnow() + timedelta(hours=3))
        pupils = [f.student(klass, name=name) for name in ("甲同学", "乙同学", "丙同学")]
        accounts = [f.student_user(p) for p in pupils]
        teacher = f.user("teacher", classes=[klass])
        parent = f.user("guardian", children=[pupils[2]])
        for n, account in enumerate(accounts):
            _self_scan(account, activity.id, "entry", utcnow() - timedelta(minutes=60 - n), "one-phone")
        _self_scan(accounts[2], activity.id, "exit", utcnow() - timedelta(minutes=2), "one-phone")
        review = session.scalar(select(Review).where(Review.student_id == pupils[2].id))
        reviews.decide(user=teacher, review_id=review.id, decision="reject", reason="场馆没有该生的入场记录")
        review_id, parent_name = review.id, parent.username

    _login(client, parent_name)
    home = client.get("/guardian").get_data(as_text=True)
    assert "场馆没有该生的入场记录" in home and "提交申诉" in home
    token = TOKEN.search(home).group(1)
    answer = client.post(f"/reviews/{review_id}/appeal", data={"csrf_token": token, "reason": "孩子全程在场，有照片"})
    assert answer.status_code == 302
    assert "申诉已提交" in client.get("/guardian").get_data(as_text=True)
    with data() as session:
        assert session.get(Review, review_id).status == "appealed"
