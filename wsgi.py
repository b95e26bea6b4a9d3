"""What gunicorn and `flask --app wsgi` load."""

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
