"""gunicorn settings: `gunicorn -c config/gunicorn.py wsgi:app`. Every value can be overridden by env.

Access lines are written by the app itself as JSON (with request id, route, status, duration and
user id), so gunicorn's own access log is off unless GUNICORN_ACCESS_LOG names a file or "-".
Metrics from every worker are aggregated through PROMETHEUS_MULTIPROC_DIR (a fresh temporary
directory unless set; a directory you name is created and emptied of metric files at start, as
prometheus_client requires between runs).
"""

import multiprocessing
import os
import tempfile
from pathlib import Path

bind = os.environ.get("GUNICORN_BIND", f"127.0.0.1:{os.environ.get('PORT', '5000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, min(multiprocessing.cpu_count() * 2 + 1, 9))))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
# Recycle workers now and then so a slow leak can never take a server down.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "20000"))
max_requests_jitter = 2000
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
access_log_format = (
    '{"time": "%(t)s", "remote": "%(h)s", "method": "%(m)s", "path": "%(U)s", "status": %(s)s, '
    '"bytes": %(B)s, "duration_us": %(D)s, "request_id": "%({x-request-id}o)s"}'
)
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
preload_app = False

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ledger-metrics-")

# Imported here, once, after the directory is known — not inside child_exit: when several workers
# exit at once the handler re-enters mid-import ("partially initialized module"), and gunicorn
# treats that exception as fatal to the master (seen at shutdown under bench/load.py).
from prometheus_client import multiprocess  # noqa: E402


def on_starting(server):
    """Start with an empty metrics directory: files left by an earlier run would be counted again."""
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the aggregated metrics."""
    multiprocess.mark_process_dead(worker.pid)
