"""Shared by the benchmarks: a freshly migrated app on a given database URL, and gunicorn serving it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_SECRETS = {"SECRET_KEY": "bench-secret-key-0123456789abcdef", "SIGNING_KEY": "bench-signing-key-0123456789abcdef"}


def fresh_app(url: str, **config):
    """An app on `url` with an empty schema built by the migrations (PostgreSQL: the public schema
    is dropped first), rate limits and access logs off: benchmarks measure the pipeline."""
    os.environ["DATABASE_URL"] = url
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app import create_app
    from app.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, **BENCH_SECRETS, "RATELIMIT_ENABLED": False,
                      "ACCESS_LOG": False, **config})
    with app.app_context():
        if url.startswith("postgresql"):
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        upgrade(directory=str(ROOT / "migrations"))
    return app


def server_env(url: str, workers: int) -> dict:
    """Environment for a gunicorn serving the bench database (same secrets as fresh_app)."""
    return {**os.environ, "DATABASE_URL": url, **BENCH_SECRETS, "WEB_CONCURRENCY": str(workers),
            "APP_ENV": "development", "RATELIMIT_ENABLED": "0", "ACCESS_LOG": "0", "LOG_LEVEL": "warning"}


def start_server(url: str, workers: int, port: int, app: str = "wsgi:app", **env) -> subprocess.Popen:
    """gunicorn (config/gunicorn.py) serving `app` on the bench database on 127.0.0.1:`port`, once
    it answers /readyz; `env` adds to server_env. Stop it with stop_server."""
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "-c", str(ROOT / "config/gunicorn.py"), "--bind", f"127.0.0.1:{port}",
         app], cwd=ROOT, env={**server_env(url, workers), **env}, start_new_session=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}")
    except BaseException:
        stop_server(server)
        raise
    return server


def wait_until_up(base: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not come up")


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM to the gunicorn master, which stops its workers (a signal to the whole group would
    reach the workers from outside: gunicorn logs each as an error); the group if it lingers."""
    server.terminate()
    try:
        server.wait(timeout=45)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
