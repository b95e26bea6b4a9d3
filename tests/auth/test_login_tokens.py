"""Login, refresh and bearer tokens (SPEC §9): the happy path, every way a token can be bad, and
the login rate limit (strict per username, generous per address).

Covered: login answer shape; wrong password and unknown user answer alike (401
invalid_credentials); refresh, and refresh refused for an access token or a revoked generation;
/me without a token, with an expired, forged, `alg: none` or garbage token, and for an inactive
account; the per-username failure limit (429 in the envelope with Retry-After) on an app built
with limits enabled, while another username from the same address still logs in.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from tests import factories as f

LOGIN = "/api/v1/auth/login"


def _assert_error(response, status: int, code: str) -> dict:
    """The response is the error envelope with this status and code; returns the error object."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    return error


def _login(client, username, password=f.PASSWORD):
    return client.post(LOGIN, json={"username": username, "password": password})


def _claims(user, typ="access", **overrides) -> dict:
    now = datetime.now(UTC)
    claims = {"sub": str(user.id), "typ": typ, "role": user.role, "iat": now, "nbf": now,
              "exp": now + timedelta(minutes=5)}
    claims.update(overrides)
    return claims


def _me(client, token: str):
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def test_login_returns_access_refresh_and_user(client, app):
    account = f.user("teacher", username="li.laoshi")
    response = _login(client, "li.laoshi")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == app.config["ACCESS_TOKEN_MINUTES"] * 60 >= 15 * 60
    assert body["access_token"] and body["refresh_token"] and body["access_token"] != body["refresh_token"]
    assert body["user"]["id"] == account.id and body["user"]["role"] == "teacher"
    assert body["user"]["username"] == "li.laoshi"
    assert "password" not in body["user"] and "password_hash" not in body["user"]
    me = _me(client, body["access_token"])
    assert me.status_code == 200 and me.json["id"] == account.id


def test_wrong_password_and_unknown_user_get_the_same_answer(client):
    f.user("teacher", username="wang.laoshi")
    wrong = _assert_error(_login(client, "wang.laoshi", "not-the-password"), 401, "invalid_credentials")
    unknown = _assert_error(_login(client, "nobody.here", "not-the-password"), 401, "invalid_credentials")
    assert wrong == unknown


def test_inactive_account_cannot_log_in_nor_use_its_token(client, db_session):
    account = f.user("teacher", username="retired.teacher")
    headers = f.bearer(account)
    account.active = False
    db_session.commit()
    _assert_error(_login(client, "retired.teacher"), 401, "invalid_credentials")
    _assert_error(client.get("/api/v1/me", headers=headers), 401, "token_invalid")


def test_refresh_gives_a_new_pair_and_refuses_an_access_token(client):
    account = f.user("school_admin", school_=f.school())
    tokens = _login(client, account.username).json
    fresh = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert fresh.status_code == 200, fresh.json
    assert fresh.json["user"]["id"] == account.id
    assert _me(client, fresh.json["access_token"]).status_code == 200
    wrong_type = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["access_token"]})
    _assert_error(wrong_type, 401, "token_invalid")
    # ...and a refresh token is no access token either
    _assert_error(_me(client, tokens["refresh_token"]), 401, "token_invalid")


def test_refresh_refused_after_the_token_generation_is_raised(client, db_session):
    account = f.user("teacher")
    tokens = _login(client, account.username).json
    account.token_generation += 1  # "log out everywhere"
    db_session.commit()
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    _assert_error(response, 401, "token_invalid")


def test_me_without_a_token_is_401(client):
    _assert_error(client.get("/api/v1/me"), 401, "unauthorized")
    _assert_error(client.get("/api/v1/me", headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401, "unauthorized")
    _assert_error(client.get("/api/v1/me", headers={"Authorization": "Bearer "}), 401, "unauthorized")


def test_expired_token_is_401_token_expired(client, app):
    account = f.user("teacher")
    past = datetime.now(UTC) - timedelta(hours=2)
    token = jwt.encode(_claims(account, iat=past, nbf=past, exp=past + timedelta(minutes=30)),
                       app.config["SECRET_KEY"], algorithm="HS256")
    error = _assert_error(_me(client, token), 401, "token_expired")
    assert "重新登录" in error["message"]


def test_token_signed_with_another_key_is_401(client):
    account = f.user("admin")
    token = jwt.encode(_claims(account), "someone-elses-secret-key-of-32-chars!", algorithm="HS256")
    _assert_error(_me(client, token), 401, "token_invalid")


def test_alg_none_token_is_401(client):
    account = f.user("admin")

    def b64(part: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(part, default=str).encode()).rstrip(b"=").decode()

    claims = _claims(account)
    claims = {**claims, "iat": int(claims["iat"].timestamp()), "nbf": int(claims["nbf"].timestamp()),
              "exp": int(claims["exp"].timestamp())}
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    _assert_error(_me(client, unsigned), 401, "token_invalid")


def test_token_missing_required_claims_is_401(client, app):
    account = f.user("admin")
    claims = _claims(account)
    del claims["typ"]
    token = jwt.encode(claims, app.config["SECRET_KEY"], algorithm="HS256")
    _assert_error(_me(client, token), 401, "token_invalid")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.x"])
def test_garbage_token_is_401(client, token):
    _assert_error(_me(client, token), 401, "token_invalid")


def test_login_with_missing_fields_is_422(client):
    error = _assert_error(client.post(LOGIN, json={"username": "x"}), 422, "validation_error")
    assert "password" in error["details"]["fields"]


# --- rate limit -------------------------------------------------------------------------------


@pytest.fixture
def limited_client(rate_limited_app):
    return rate_limited_app(LOGIN_FAILURES_PER_USERNAME="3 per 15 minutes").test_client()


def test_failed_logins_per_username_are_limited_but_not_the_address(limited_client):
    f.user("teacher", username="zhao.laoshi")
    f.user("teacher", username="qian.laoshi")
    for _ in range(3):
        _assert_error(_login(limited_client, "zhao.laoshi", "wrong-password"), 401, "invalid_credentials")
    blocked = _login(limited_client, "zhao.laoshi", "wrong-password")
    error = _assert_error(blocked, 429, "too_many_requests")
    assert 0 < int(blocked.headers["Retry-After"]) <= 15 * 60
    assert "稍后" in error["message"]
    # Even the right password waits: the username is locked for the window.
    _assert_error(_login(limited_client, "zhao.laoshi"), 429, "too_many_requests")
    # Another account from the same address (one school computer room) is not affected.
    ok = _login(limited_client, "qian.laoshi")
    assert ok.status_code == 200, ok.json
    assert ok.json["user"]["username"] == "qian.laoshi"


def test_successful_logins_do_not_count_against_the_username(limited_client):
    f.user("teacher", username="sun.laoshi")
    for _ in range(5):
        response = _login(limited_client, "sun.laoshi")
        assert response.status_code == 200, response.json


def test_username_limit_ignores_case_and_spaces(limited_client):
    f.user("teacher", username="zhou.laoshi")
    for name in ("zhou.laoshi", "ZHOU.laoshi", " zhou.laoshi "):
        assert _login(limited_client, name, "wrong-password").status_code == 401
    _assert_error(_login(limited_client, "Zhou.Laoshi", "wrong-password"), 429, "too_many_requests")
