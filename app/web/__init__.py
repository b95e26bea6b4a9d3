"""Server-rendered web pages (zh-CN, mobile-first) for every audience, on the same services as the API.

Pages call the domain services directly; they never go through the JSON API. A browser is known by
Flask's signed session cookie (HttpOnly, SameSite=Lax, Secure in production) holding the user id
and the account's token generation; every form and every state-changing fetch carries a CSRF token
(Flask-WTF), checked here for this blueprint only, so the bearer-token JSON API is untouched.
All JavaScript and CSS are static files under app/web/static (no inline script, no style
attribute, nothing from another host). See docs/web.md.
"""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/web/static",
)


def register_web(app: Flask) -> None:
    """Register the pages (routes, CSRF check, template helpers, error pages) on `app`."""
    app.register_blueprint(bp)


# The routes and helpers attach themselves to `bp` once, at import (a blueprint cannot change after
# its first registration, and the test suite builds several apps).
from app.web import auth, bureau, family, scan, teacher, venue  # noqa: E402, F401
from app.web.helpers import register_template_helpers  # noqa: E402

register_template_helpers(bp)
