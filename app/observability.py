"""Request ids, structured JSON logs and Prometheus metrics.

* Every request gets an id: the caller's `X-Request-Id` when it is sane, a new one otherwise; it is
  echoed in the response header and put on every log line of the request.
* Logs are one JSON object per line (time, level, logger, message, request_id, and for the access
  line method, path, status, duration_ms, user_id) — what a log shipper wants.
* `GET /metrics` (Prometheus text format): request latency histograms by route and method, scans by
  outcome and reason, ledger appends by kind. With several gunicorn workers set
  PROMETHEUS_MULTIPROC_DIR (config/gunicorn.py does) so every worker's samples are aggregated.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

# The caller's id as a plain int in the WSGI environ, set where the caller is authenticated (API
# token or browser session), for the access log line.
USER_ID_KEY = "ledger.user_id"

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

REQUEST_LATENCY = Histogram(
    "ledger_http_request_duration_seconds", "HTTP request latency by route.", ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
SCANS = Counter("ledger_scans_total", "Scans processed, by outcome and refusal reason.", ["outcome", "reason"])
LEDGER_APPENDS = Counter("ledger_appends_total", "Ledger entries appended, by kind.", ["kind"])


class JsonFormatter(logging.Formatter):
    """One JSON object per log line, with the request id when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or _current_request_id()
        if request_id:
            data["request_id"] = request_id
        for key in ("method", "path", "status", "duration_ms", "user_id"):
            if hasattr(record, key):
                data[key] = getattr(record, key)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def _current_request_id() -> str | None:
    from flask import has_request_context

    return g.get("request_id") if has_request_context() else None


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def register_observability(app: Flask) -> None:
    """Request ids, the access log line, latency metrics and the /metrics endpoint."""
    access = logging.getLogger("ledger.access")

    @app.before_request
    def _start():
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response):
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule else "unmatched"
        REQUEST_LATENCY.labels(request.method, route, str(response.status_code)).observe(elapsed)
        response.headers["X-Request-Id"] = g.get("request_id", "")
        if app.config.get("ACCESS_LOG", True):
            # the id kept at authentication: reading it from the User would reload an instance a
            # rollback expired (a 503 for a lost database or a full write queue), in a new transaction
            access.info(
                "%s %s %s", request.method, request.path, response.status_code,
                extra={"method": request.method, "path": request.path, "status": response.status_code,
                       "duration_ms": round(elapsed * 1000, 2), "user_id": request.environ.get(USER_ID_KEY)},
            )
        return response

    @app.get("/metrics")
    def metrics():
        """Prometheus metrics (aggregated over gunicorn workers when PROMETHEUS_MULTIPROC_DIR is set)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            payload = generate_latest(registry)
        else:
            payload = generate_latest()
        return Response(payload, mimetype=CONTENT_TYPE_LATEST)
