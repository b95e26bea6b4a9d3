"""Settings classes. The environment is read here and nowhere else."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
INSTANCE_DIR = BASE_DIR / "instance"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


class Base:
    """Shared defaults; every value here is safe for a developer's machine."""

    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-secret-key-change-me")
    # Signs venue codes and student passes (HMAC-SHA256). Defaults to SECRET_KEY outside production.
    SIGNING_KEY = os.environ.get("SIGNING_KEY") or None
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'ledger.sqlite3'}"
    )
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    MAX_CONTENT_LENGTH = _env_int("MAX_CONTENT_LENGTH", 5 * 1024 * 1024)
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000")
    REDIS_URL = os.environ.get("REDIS_URL") or None
    # Several app servers: how many proxies (load balancer, nginx) stand in front of the app and
    # append to X-Forwarded-For / X-Forwarded-Proto. wsgi.py trusts exactly that many hops, so rate
    # limits and the audit trail see the pupil's address, not the balancer's. 0 (default): trust none.
    TRUSTED_PROXY_HOPS = _env_int("TRUSTED_PROXY_HOPS", 0)
    # A Redis outage must not stop scans and logins: while the store is unreachable, Flask-Limiter
    # counts in each process's memory and logs the error instead of answering 500.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    ACCESS_TOKEN_MINUTES = _env_int("ACCESS_TOKEN_MINUTES", 30)
    REFRESH_TOKEN_DAYS = _env_int("REFRESH_TOKEN_DAYS", 14)
    # Login throttling: failures per username are strict, attempts per address generous
    # (a school's whole computer room shares one address).
    LOGIN_FAILURES_PER_USERNAME = os.environ.get("LOGIN_FAILURES_PER_USERNAME", "5 per 15 minutes")
    LOGIN_ATTEMPTS_PER_ADDRESS = os.environ.get("LOGIN_ATTEMPTS_PER_ADDRESS", "600 per 15 minutes")
    RATELIMIT_ENABLED = os.environ.get("RATELIMIT_ENABLED", "1") != "0"
    # Scans: per account (a staff scanner at a busy entrance included), per device, per address.
    SCAN_LIMIT_PER_ACCOUNT = os.environ.get("SCAN_LIMIT_PER_ACCOUNT", "300 per minute")
    SCAN_LIMIT_PER_DEVICE = os.environ.get("SCAN_LIMIT_PER_DEVICE", "300 per minute")
    SCAN_LIMIT_PER_ADDRESS = os.environ.get("SCAN_LIMIT_PER_ADDRESS", "3000 per minute")
    EXPORT_LIMIT_PER_ACCOUNT = os.environ.get("EXPORT_LIMIT_PER_ACCOUNT", "30 per minute")
    # argon2id cost; tests lower it so that a suite with many accounts stays fast.
    PASSWORD_HASH_TIME_COST = 3
    PASSWORD_HASH_MEMORY_KIB = 65536
    EVIDENCE_DIR = os.environ.get("EVIDENCE_DIR", str(INSTANCE_DIR / "evidence"))

    # flask-smorest / OpenAPI
    API_TITLE = "科普教育学分制 Science-education credit ledger"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api"
    OPENAPI_JSON_PATH = "v1/openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    OPENAPI_SWAGGER_UI_URL = "/api/docs/static/"
    # Transcripts: an embedded TrueType/TTC font for the PDF (default: reportlab's STSong-Light CID
    # font, not embedded), how long an issued credential is valid, the per-process JSON cache size.
    TRANSCRIPT_FONT_PATH = os.environ.get("TRANSCRIPT_FONT_PATH") or None
    CREDENTIAL_VALID_DAYS = _env_int("CREDENTIAL_VALID_DAYS", 730)
    TRANSCRIPT_CACHE_BYTES = _env_int("TRANSCRIPT_CACHE_BYTES", 32 * 1024 * 1024)
    PRODUCTION = False
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
    ACCESS_LOG = os.environ.get("ACCESS_LOG", "1") != "0"
    # Web pages (app/web): a signed session cookie the page scripts cannot read, not sent on
    # cross-site subrequests; Secure in production. CSRF is checked by the web blueprint only (the
    # JSON API uses bearer tokens); a token lives as long as the session, so a scanner page left
    # open all day can still upload.
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    PERMANENT_SESSION_LIFETIME = timedelta(days=_env_int("WEB_SESSION_DAYS", 14))
    WTF_CSRF_CHECK_DEFAULT = False
    WTF_CSRF_TIME_LIMIT = None
    # No Referer check on HTTPS: app/security.py sends "Referrer-Policy: no-referrer" (scan URLs carry
    # a token), so browsers send no Referer; the session-bound token and SameSite=Lax protect the forms.
    WTF_CSRF_SSL_STRICT = False

    @classmethod
    def validate(cls) -> None:
        """Refuse configurations that would be unsafe; the base config has none."""


class Development(Base):
    """`make run`: embedded SQLite in instance/, no other service."""


class Testing(Base):
    """The test suite: a throwaway database (TEST_DATABASE_URL or a temp SQLite file)."""

    TESTING = True
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite:///:memory:")
    PASSWORD_HASH_TIME_COST = 1
    PASSWORD_HASH_MEMORY_KIB = 8
    RATELIMIT_ENABLED = False


class Production(Base):
    """Production: PostgreSQL, secrets from the environment, no defaults that would work."""

    SECRET_KEY = os.environ.get("SECRET_KEY")
    SIGNING_KEY = os.environ.get("SIGNING_KEY")
    PRODUCTION = True
    SESSION_COOKIE_SECURE = True

    @classmethod
    def validate(cls) -> None:
        missing = [name for name in ("SECRET_KEY", "SIGNING_KEY", "DATABASE_URL") if not os.environ.get(name)]
        if missing:
            raise RuntimeError(f"Refusing to start in production without: {', '.join(missing)}")
        if len(os.environ["SECRET_KEY"]) < 32 or len(os.environ["SIGNING_KEY"]) < 32:
            raise RuntimeError("SECRET_KEY and SIGNING_KEY must each be at least 32 characters")


CONFIGS = {"development": Development, "testing": Testing, "production": Production}


def config_from_env() -> type[Base]:
    """The settings class named by APP_ENV (development by default)."""
    name = os.environ.get("APP_ENV", "development")
    try:
        return CONFIGS[name]
    except KeyError:
        raise RuntimeError(f"APP_ENV must be one of {sorted(CONFIGS)}, not {name!r}") from None
