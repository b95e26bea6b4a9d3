"""Request ids, metrics, security headers, local Swagger UI assets and scan rate limits."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from app.db import utcnow
from app.venues import codes
from tests import factories as f


def test_request_id_is_echoed_or_made(client):
    mine = "req-" + uuid.uuid4().hex[:12]
    assert client.get("/healthz", headers={"X-Request-Id": mine}).headers["X-Request-Id"] == mine
    made = client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"}).headers["X-Request-Id"]
    assert len(made) == 32 and made != mine


def test_security_headers_everywhere(client):
    for path in ("/healthz", "/api/v1/openapi.json", "/api/v1/nowhere"):
        headers = client.get(path).headers
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert "Access-Control-Allow-Origin" not in headers
        assert "Strict-Transport-Security" not in headers  # production only


def test_cors_preflight_gets_no_allowance(client):
    res = client.options("/api/v1/checkins", headers={"Origin": "https://evil.example",
                                                       "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in res.headers


def test_swagger_ui_is_served_locally(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "/api/docs/static/swagger-ui-bundle.js" in body and "https://" not in body.split("<body>")[0]
    asset = client.get("/api/docs/static/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.data) > 100_000


def test_metrics_count_scans_and_appends(client, ctx):
    pupil = f.student()
    account = f.student_user(pupil)
    act = f.activity(kind="lecture", starts_at=utcnow() - timedelta(hours=1))
    client.post("/api/v1/checkins", json={"code": "garbage"}, headers=f.bearer(account))
    client.post("/api/v1/checkins", json={"code": codes.venue_code(act.id, "entry", utcnow()).token},
                headers=f.bearer(account))
    text = client.get("/metrics").get_data(as_text=True)
    assert 'ledger_scans_total{outcome="refused",reason="code_invalid"}' in text
    assert 'ledger_scans_total{outcome="accepted",reason=""}' in text
    assert 'ledger_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/api/v1/checkins"' in text


def test_scans_are_rate_limited_per_account(rate_limited_app, ctx):
    limited = rate_limited_app(SCAN_LIMIT_PER_ACCOUNT="3 per minute").test_client()
    account = f.student_user()
    statuses = [limited.post("/api/v1/checkins", json={"code": "garbage"}, headers=f.bearer(account)).status_code
                for _ in range(4)]
    assert statuses == [422, 422, 422, 429]
    other = f.student_user()
    assert limited.post("/api/v1/checkins", json={"code": "x"}, headers=f.bearer(other)).status_code == 422


def test_scans_are_rate_limited_per_device(rate_limited_app, ctx):
    limited = rate_limited_app(SCAN_LIMIT_PER_DEVICE="2 per minute").test_client()
    statuses = [limited.post("/api/v1/checkins", json={"code": "garbage"},
                             headers={**f.bearer(f.student_user()), "X-Device-Id": "kiosk-1"}).status_code
                for _ in range(3)]
    assert statuses == [422, 422, 429]
    blocked = limited.post("/api/v1/checkins", json={"code": "g"},
                           headers={**f.bearer(f.student_user()), "X-Device-Id": "kiosk-1"})
    assert blocked.json["error"]["code"] == "too_many_requests" and int(blocked.headers["Retry-After"]) > 0


def _redis_url() -> str | None:
    """A scratch Redis database on this machine, or None when no Redis answers."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        return None
    return "redis://127.0.0.1:6379/15"


def test_two_servers_share_the_scan_limit_through_redis(rate_limited_app, ctx):
    url = _redis_url()
    if url is None:
        pytest.skip("no Redis on 127.0.0.1:6379: the shared limit store is not exercised")
    import redis

    redis.Redis.from_url(url).flushdb()
    # Two app instances (two servers behind a balancer), one Redis: the account's budget is shared.
    first, second = (rate_limited_app(SCAN_LIMIT_PER_ACCOUNT="3 per minute", REDIS_URL=url,
                                      RATELIMIT_STORAGE_URI=url, RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=False)
                     .test_client() for _ in range(2))
    account = f.student_user()
    statuses = [client.post("/api/v1/checkins", json={"code": "garbage"}, headers=f.bearer(account)).status_code
                for client in (first, second, first, second)]
    assert statuses == [422, 422, 422, 429]
    assert redis.Redis.from_url(url).dbsize() > 0  # the counters live in Redis, not in either process
