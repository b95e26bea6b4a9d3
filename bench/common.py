"""Shared by the benchmarks: a freshly migrated app on a given database URL."""

from __future__ import annotations

import os
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
