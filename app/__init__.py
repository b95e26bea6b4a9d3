"""The science-education credit ledger (科普教育学分制): application factory."""

from __future__ import annotations

from flask import Flask, jsonify
from sqlalchemy import text

from config.settings import Base, config_from_env


def create_app(config: type[Base] | dict | None = None) -> Flask:
    """Build an app: settings, extensions, blueprints, error handlers, CLI."""
    app = Flask(__name__, instance_relative_config=False)
    settings = config or config_from_env()
    if isinstance(settings, dict):
        app.config.from_object(config_from_env())
        app.config.update(settings)
    else:
        settings.validate()
        app.config.from_object(settings)
    if app.config.get("SIGNING_KEY") is None:
        app.config["SIGNING_KEY"] = app.config["SECRET_KEY"]
    from app.observability import configure_logging, register_observability
    from app.security import register_security

    if not app.config.get("TESTING"):
        configure_logging(app.config.get("LOG_LEVEL", "INFO"))

    _ensure_instance_dir(app)
    from app.common import URL_CONVERTERS

    app.url_map.converters.update(URL_CONVERTERS)  # before any route: ids fit the database, no NUL in text
    register_extensions(app)
    register_blueprints(app)
    register_observability(app)
    register_security(app)
    from app.errors import register_error_handlers

    register_error_handlers(app)
    from app.cli import register_cli

    register_cli(app)
    return app


def _ensure_instance_dir(app: Flask) -> None:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///") and ":memory:" not in uri:
        from pathlib import Path

        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def register_extensions(app: Flask) -> None:
    from app import models  # noqa: F401  (the whole schema, for SQLAlchemy and Alembic)
    from app.db import configure_sqlite, sqlite_checkpoint_after_response, sqlite_engine_options
    from app.extensions import api, csrf, db, limiter, migrate

    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = sqlite_engine_options(
        app.config["SQLALCHEMY_DATABASE_URI"], dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {}))
    db.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            configure_sqlite(db.engine)
            sqlite_checkpoint_after_response(app, db.engine)
    migrate.init_app(app, db, directory=str(_migrations_dir()), render_as_batch=True, compare_type=True)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    if app.config.get("REDIS_URL"):
        app.config["RATELIMIT_STORAGE_URI"] = app.config["REDIS_URL"]
    limiter.init_app(app)
    csrf.init_app(app)
    api.init_app(app)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    api.spec.options["security"] = [{"bearerAuth": []}]


def _migrations_dir():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "migrations"


def register_blueprints(app: Flask) -> None:
    from app.audit.routes import blp as audit_blp
    from app.auth.routes import blp as auth_blp
    from app.checkins.routes import blp as checkins_blp
    from app.credits.routes import blp as credits_blp
    from app.extensions import api, db
    from app.matching.routes import blp as matching_blp
    from app.matching.web import bp as directory_page
    from app.orgs.routes import blp as orgs_blp
    from app.reviews.routes import blp as reviews_blp
    from app.stats.routes import blp as stats_blp
    from app.transcripts.routes import blp as transcripts_blp
    from app.transcripts.routes import public_blp as verify_blp
    from app.venues.routes import blp as venues_blp
    from app.web import register_web

    # The JSON API (documented in the OpenAPI file), one blueprint per domain package.
    for blueprint in (auth_blp, orgs_blp, venues_blp, checkins_blp, credits_blp, reviews_blp, transcripts_blp,
                      verify_blp, audit_blp, stats_blp, matching_blp):
        api.register_blueprint(blueprint)
    # Server-rendered pages: the public directory (/directory) and every audience's pages (docs/web.md).
    app.register_blueprint(directory_page)
    register_web(app)

    @app.get("/healthz")
    def healthz():
        """Liveness: the process answers."""
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz():
        """Readiness: the database answers."""
        try:
            db.session.execute(text("SELECT 1"))
        except Exception:
            db.session.rollback()
            return jsonify({"status": "unavailable", "database": "down"}), 503
        return jsonify({"status": "ok", "database": "ok"})
