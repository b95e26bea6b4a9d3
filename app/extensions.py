"""Extensions, created bare and bound to an app in create_app()."""

from __future__ import annotations

from apispec import BasePlugin
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


class CommonErrorResponses(BasePlugin):
    """Declare the error answers every operation of a kind can give, whatever its own logic:

    * 401 (no or a bad token) and 403 (a role that may never use it) where a token is required
      (every operation but those marked `security: []`);
    * 404 where the path names an object (a missing one, one outside the caller's scope, or an id
      out of range, which matches no route);
    * 400 (the body is not valid JSON) and 413 (larger than MAX_CONTENT_LENGTH) where there is a body;
    * 503 everywhere: the database is unavailable (app/errors.py answers OperationalError with 503 and
      Retry-After), or a service refuses for want of what it needs (`no_active_rules`,
      `signing_key_unavailable`).

    Everything else (a 404 for an id in the body, 409, a 422 refusal, 429) is declared by the route
    itself (`app.common.error_responses`), so the document lists exactly what each operation answers.
    """

    def operation_helper(self, path=None, operations=None, **kwargs):
        for operation in (operations or {}).values():
            responses = operation.setdefault("responses", {})
            common = []
            if "{" in (path or ""):
                common.append((404, "NOT_FOUND"))
            if operation.get("security") != []:
                common += [(401, "UNAUTHORIZED"), (403, "FORBIDDEN")]
            if "requestBody" in operation:
                common += [(400, "BAD_REQUEST"), (413, "REQUEST_ENTITY_TOO_LARGE")]
            common.append((503, "SERVICE_UNAVAILABLE"))
            for status, component in common:
                # A route's own declaration (an int key until apispec cleans the operation) wins.
                if status not in responses and str(status) not in responses:
                    responses[str(status)] = component


class ErrorEnvelopeApi(Api):
    """flask-smorest's Api, answering HTTP errors in the project's one error envelope, and documenting
    them as they are: the envelope's schema, and no catch-all `default` response (an undeclared status
    is a bug the schemathesis fuzzing in tests/fuzz reports)."""

    DEFAULT_ERROR_RESPONSE_NAME = None

    def __init__(self, *args, **kwargs):
        from app.errors import ErrorSchema

        self.ERROR_SCHEMA = ErrorSchema
        super().__init__(*args, **kwargs)

    def _init_spec(self, *, extra_plugins=None, **kwargs):
        super()._init_spec(extra_plugins=[*(extra_plugins or ()), CommonErrorResponses()], **kwargs)

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
