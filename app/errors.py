"""One JSON error envelope for every failure: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from marshmallow import Schema, ValidationError, fields
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# Chinese messages for the HTTP errors a client can cause without a domain reason.
HTTP_MESSAGES = {
    400: ("bad_request", "请求格式有误，请检查后重试。"),
    401: ("unauthorized", "请先登录。"),
    403: ("forbidden", "没有权限执行此操作。"),
    404: ("not_found", "找不到该资源。"),
    405: ("method_not_allowed", "不支持该请求方法。"),
    409: ("conflict", "与现有数据冲突。"),
    413: ("payload_too_large", "上传内容过大。"),
    415: ("unsupported_media_type", "不支持的内容类型。"),
    422: ("validation_error", "提交的数据不符合要求。"),
    429: ("too_many_requests", "请求过于频繁，请稍后再试。"),
    500: ("internal_error", "服务器内部错误，请稍后再试。"),
    503: ("unavailable", "服务暂时不可用，请稍后再试。"),
}


class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"description": "snake_case reason: not_found, code_expired, …"})
    message = fields.String(required=True, metadata={"description": "what happened and what to do, in Chinese"})
    details = fields.Dict(required=True, metadata={"description": "e.g. {\"fields\": {name: [messages]}}"})


class ErrorSchema(Schema):
    """The one error envelope, as the OpenAPI document describes every error response."""

    error = fields.Nested(ErrorDetailSchema, required=True)


class APIError(Exception):
    """A refusal the client should understand: status, snake_case code, Chinese message."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


def field_error(field: str, message: str, status: int = 422) -> APIError:
    """A refusal pointing at one input field, shaped like marshmallow's field messages."""
    code = "conflict" if status == 409 else "validation_error"
    summary = message if status == 409 else "提交的数据不符合要求。"
    return APIError(status, code, summary, {"fields": {field: [message]}})


def not_found(what: str = "资源") -> APIError:
    """The 404 used for missing *and* out-of-scope objects, so ids cannot be probed."""
    return APIError(404, "not_found", f"找不到该{what}。")


def envelope(status: int, code: str, message: str, details: dict | None = None, headers=None):
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def http_error_response(error: HTTPException):
    """Any werkzeug/flask-smorest HTTP error, in the envelope; webargs field messages kept."""
    status = error.code or 500
    code, message = HTTP_MESSAGES.get(status, ("http_error", error.description or "请求失败。"))
    details: dict = {}
    data = getattr(error, "data", None) or {}
    if "messages" in data:
        messages = data["messages"]
        # webargs nests messages by location ({"json": {...}}); the location is noise for clients.
        if isinstance(messages, dict) and len(messages) == 1:
            messages = next(iter(messages.values()))
        details = {"fields": messages}
        if status == 400:
            code, message = "malformed_json", "请求体不是有效的 JSON。"
            details = {"fields": {"body": [message]}}
    headers = {}
    if status == 429:
        code = "too_many_requests"
        headers["Retry-After"] = str(_retry_after())
    elif status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    return envelope(status, code, message, details, headers)


def _retry_after() -> int:
    """Seconds until the breached rate-limit window resets (at least 1)."""
    import time

    from app.extensions import limiter

    current = limiter.current_limit
    if current is None:
        return 60
    return max(1, int(current.reset_at - time.time()))


def register_error_handlers(app: Flask) -> None:
    """Route every failure through the envelope; a 500 hides everything but a generic message."""
    from app.extensions import db

    @app.errorhandler(APIError)
    def _api_error(error: APIError):
        db.session.rollback()  # a refusal leaves nothing half-written behind
        return envelope(error.status, error.code, error.message, error.details)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        return http_error_response(error)

    @app.errorhandler(ValidationError)
    def _validation_error(error: ValidationError):
        return envelope(422, "validation_error", HTTP_MESSAGES[422][1], {"fields": error.messages})

    @app.errorhandler(IntegrityError)
    def _integrity_error(error: IntegrityError):
        db.session.rollback()
        log.info("integrity error: %s", error.orig)
        return envelope(409, "conflict", "与现有数据冲突（可能重复提交）。")

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _database_unavailable(error):
        # The database went away (restart, failover, network): say so and let the client retry;
        # the pool reconnects by itself (pool_pre_ping) once it is back.
        try:
            db.session.rollback()
        except Exception:  # the connection is gone; the session is discarded at teardown anyway
            log.warning("rollback after a lost connection failed", exc_info=True)
        log.error("database unavailable: %s", error.orig if hasattr(error, "orig") else error)
        return envelope(503, *HTTP_MESSAGES[503], headers={"Retry-After": "5"})

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        db.session.rollback()
        log.exception("unhandled error")
        return envelope(500, *HTTP_MESSAGES[500])
