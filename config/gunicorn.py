"""gunicorn settings: `gunicorn -c config/gunicorn.py wsgi:app`. Every value can be overridden by env."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", f"127.0.0.1:{os.environ.get('PORT', '5000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, min(multiprocessing.cpu_count() * 2 + 1, 9))))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
# Recycle workers now and then so a slow leak can never take a server down.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "20000"))
max_requests_jitter = 2000
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # "" turns it off (benchmarks)
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
# The app is built once, before forking; workers must not share database connections.
preload_app = False
