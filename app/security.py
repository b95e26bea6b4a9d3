"""Security headers on every response, and Swagger UI served from the app itself.

CSP allows only this origin: no inline script, no other host (the pages' JS and CSS are static
files). Swagger UI's own page carries an inline bootstrap script, so /api/docs alone allows inline
script. Frames are denied everywhere (the venue display page runs full screen, not in a frame).
HSTS is sent in production only (behind TLS). CORS stays closed: no Access-Control-Allow-* header
is ever sent, so browsers on other origins cannot read the API.
"""

from __future__ import annotations

from flask import Flask, request, send_from_directory

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; media-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
DOCS_CSP = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'").replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)


def register_security(app: Flask) -> None:
    @app.after_request
    def _headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", DOCS_CSP if request.path == "/api/docs" else CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        # Scan URLs carry a token: never leak them to another site through Referer.
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Permissions-Policy", "geolocation=(), microphone=(), camera=(self)")
        if app.config.get("PRODUCTION"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response

    from swagger_ui_bundle import swagger_ui_path

    @app.get("/api/docs/static/<path:filename>")
    def swagger_ui_static(filename):
        """Swagger UI's files, served locally (no CDN at run time)."""
        return send_from_directory(swagger_ui_path, filename, max_age=86400)
