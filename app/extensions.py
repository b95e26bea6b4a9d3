"""Extensions, created bare and bound to an app in create_app()."""

from __future__ import annotations

from flask import request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Deterministic constraint names keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Model(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ErrorEnvelopeApi(Api):
    """flask-smorest's Api, answering HTTP errors in the project's one error envelope."""

    def handle_http_exception(self, error):  # noqa: D401 - flask-smorest hook
        from app.errors import http_error_response

        return http_error_response(error)


def _client_address() -> str:
    return get_remote_address() or request.remote_addr or "unknown"


# Objects stay readable after commit without a reload: a request serialises what it just wrote,
# and a reload would open a second transaction (on SQLite a second write lock) for nothing.
db = SQLAlchemy(model_class=Model, session_options={"expire_on_commit": False})
migrate = Migrate()
api = ErrorEnvelopeApi()
# Headers only on 429 (Retry-After, set by the error envelope); a 401 must not suggest waiting.
limiter = Limiter(key_func=_client_address, headers_enabled=False)
# CSRF for the web pages' forms and fetches only (WTF_CSRF_CHECK_DEFAULT = False; app/web checks it);
# the JSON API authenticates with bearer tokens, which a browser never sends by itself.
csrf = CSRFProtect()
