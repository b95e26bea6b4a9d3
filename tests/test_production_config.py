"""What README "Running in production" promises about configuration: refusals without secrets, the proxy hops
trusted by wsgi.py, rate limits that survive a Redis outage, and gunicorn settings read from the
environment."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import Production

ROOT = Path(__file__).resolve().parents[1]
GOOD = "k" * 32


@pytest.mark.parametrize(("env", "message"), [
    ({"SIGNING_KEY": GOOD, "DATABASE_URL": "postgresql+psycopg://db/ledger"}, "without: SECRET_KEY"),
    ({"SECRET_KEY": GOOD}, "without: SIGNING_KEY, DATABASE_URL"),
    ({"SECRET_KEY": GOOD, "SIGNING_KEY": "short", "DATABASE_URL": "postgresql+psycopg://db/ledger"},
     "at least 32 characters"),
])
def test_production_refuses_to_start_without_its_secrets(monkeypatch, env, message):
    for name in ("SECRET_KEY", "SIGNING_KEY", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(RuntimeError, match=message):
        Production.validate()


def test_production_starts_with_its_secrets(monkeypatch):
    for name in ("SECRET_KEY", "SIGNING_KEY"):
        monkeypatch.setenv(name, GOOD)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://db/ledger")
    Production.validate()


# wsgi.py is imported in a child process: building its app here would re-bind the suite's shared
# extensions (the limiter above all) to a development app.
PROBE = """
import json
from flask import request
import wsgi
from app.extensions import _client_address

@wsgi.app.get("/_probe")
def probe():
    return {"remote": request.remote_addr, "limiter_key": _client_address(), "scheme": request.scheme}

answer = wsgi.app.test_client().get("/_probe", environ_base={"REMOTE_ADDR": "10.0.0.2"},
                                    headers={"X-Forwarded-For": "198.51.100.9, 203.0.113.7",
                                             "X-Forwarded-Proto": "https"})
print(json.dumps(answer.json))
"""


@pytest.mark.parametrize(("hops", "expected"), [
    ("", {"remote": "10.0.0.2", "limiter_key": "10.0.0.2", "scheme": "http"}),  # a client cannot forge its address
    ("1", {"remote": "203.0.113.7", "limiter_key": "203.0.113.7", "scheme": "https"}),  # the balancer's view
    ("2", {"remote": "198.51.100.9", "limiter_key": "198.51.100.9", "scheme": "http"}),  # two proxies in line
])
def test_wsgi_trusts_exactly_the_configured_proxy_hops(tmp_path, hops, expected):
    env = {**os.environ, "APP_ENV": "development", "TRUSTED_PROXY_HOPS": hops, "RATELIMIT_ENABLED": "0",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'probe.sqlite3'}", "LOG_LEVEL": "WARNING", "ACCESS_LOG": "0"}
    env.pop("REDIS_URL", None)
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected


class _Unreachable:
    """A rate-limit store that is down: every call fails as a lost Redis connection does."""

    def check(self):
        return False

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ConnectionError("Error 111 connecting to redis:6379. Connection refused.")
        return fail


def test_rate_limits_fall_back_to_memory_when_the_store_is_down(rate_limited_app, monkeypatch):
    from app.extensions import limiter

    client = rate_limited_app(LOGIN_FAILURES_PER_USERNAME="3 per 15 minutes").test_client()
    monkeypatch.setattr(limiter, "_storage_dead", False)  # restored afterwards: the limiter is shared
    monkeypatch.setattr(limiter, "_storage", _Unreachable())
    monkeypatch.setattr(limiter, "_limiter", _Unreachable())
    statuses = [client.post("/api/v1/auth/login", json={"username": "nobody", "password": "x" * 8}).status_code
                for _ in range(4)]
    assert statuses == [401, 401, 401, 429]  # no 500: still limited, counted in this process's memory


def test_gunicorn_settings_come_from_the_environment(monkeypatch, tmp_path):
    metrics = tmp_path / "metrics"
    for name, value in {"GUNICORN_BIND": "0.0.0.0:8000", "WEB_CONCURRENCY": "3", "GUNICORN_THREADS": "2",
                        "GUNICORN_TIMEOUT": "45", "GUNICORN_GRACEFUL_TIMEOUT": "25",
                        "GUNICORN_MAX_REQUESTS": "5000", "GUNICORN_ACCESS_LOG": "-", "LOG_LEVEL": "WARNING",
                        "PROMETHEUS_MULTIPROC_DIR": str(metrics)}.items():
        monkeypatch.setenv(name, value)
    settings = runpy.run_path(str(ROOT / "config/gunicorn.py"))
    assert (settings["bind"], settings["workers"], settings["threads"]) == ("0.0.0.0:8000", 3, 2)
    assert (settings["timeout"], settings["graceful_timeout"], settings["max_requests"]) == (45, 25, 5000)
    assert (settings["accesslog"], settings["loglevel"]) == ("-", "warning")
    metrics.mkdir()
    (metrics / "counter_4242.db").write_bytes(b"left by an earlier run")
    (metrics / "keep.txt").write_text("not a metrics file")
    settings["on_starting"](None)
    assert sorted(p.name for p in metrics.iterdir()) == ["keep.txt"]


def test_seed_demo_is_refused_in_production(tmp_path):
    # A child process: the real CLI with production settings, on a throwaway SQLite file.
    env = {**os.environ, "APP_ENV": "production", "SECRET_KEY": GOOD, "SIGNING_KEY": GOOD, "FLASK_APP": "wsgi",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}", "PROMETHEUS_MULTIPROC_DIR": ""}
    env.pop("PROMETHEUS_MULTIPROC_DIR")
    out = subprocess.run([sys.executable, "-m", "flask", "seed-demo"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1
    assert "demo1234" in out.stderr and "APP_ENV=production" in out.stderr
    assert "demo1234" not in out.stdout  # no logins printed, none created
