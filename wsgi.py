"""What gunicorn and `flask --app wsgi` load."""

import gc

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import create_app


def behind_proxies(application: Flask) -> Flask:
    """Trust TRUSTED_PROXY_HOPS proxies' X-Forwarded-For / -Proto (none by default: a client could forge them)."""
    hops = int(application.config.get("TRUSTED_PROXY_HOPS") or 0)
    if hops > 0:
        application.wsgi_app = ProxyFix(application.wsgi_app, x_for=hops, x_proto=hops)
    return application


app = behind_proxies(create_app())
# The ~150,000 objects of a loaded app live as long as the process: keep them out of every later
# garbage collection, which otherwise walks them all (a full collection cost ~77 ms here).
gc.freeze()
