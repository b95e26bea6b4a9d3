"""Browser sessions: login and logout, who is looking at a page, CSRF, and the error pages.

The session cookie is Flask's signed cookie: it holds the user id and the account's
`token_generation`, so raising the generation (logout everywhere, a password change) ends every
browser session too. Login goes through `app.auth.service.login` (the same check as the API) and
shares the API's per-username failure limit (same key, same scope, so failures through the API and
through this form add up) and its per-address limit.
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from flask import (
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import TooManyRequests

from app.auth import service as auth_service
from app.auth.models import User
from app.errors import APIError
from app.extensions import csrf, db, limiter
from app.observability import USER_ID_KEY
from app.web import bp

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
ROLE_LABELS = {
    "student": "学生",
    "guardian": "家长",
    "teacher": "老师",
    "school_admin": "学校管理员",
    "venue_staff": "场馆工作人员",
    "district_officer": "区教育局",
    "city_officer": "市教育局",
    "admin": "系统管理员",
}
HOME_OF_ROLE = {
    "student": "web.student_home",
    "guardian": "web.guardian_home",
    "teacher": "web.teacher_home",
    "school_admin": "web.teacher_home",
    "venue_staff": "web.venue_home",
    "district_officer": "web.bureau_home",
    "city_officer": "web.bureau_home",
    "admin": "web.bureau_home",
}
_USER_KEY = "ledger.web_user"


# --- who is looking ------------------------------------------------------------------------------


def web_user() -> User | None:
    """The user of this browser session, or None (a stale or foreign session is dropped)."""
    if _USER_KEY in request.environ:
        return request.environ[_USER_KEY]
    user = None
    user_id = session.get("uid")
    if isinstance(user_id, int):
        user = db.session.get(User, user_id)
        if user is None or not user.active or session.get("gen") != user.token_generation:
            session.clear()
            user = None
    request.environ[_USER_KEY] = user
    request.environ[USER_ID_KEY] = user.id if user is not None else None
    return user


def is_json_endpoint() -> bool:
    return request.endpoint in JSON_ENDPOINTS


JSON_ENDPOINTS: set[str] = set()


def page(*roles: str, json: bool = False):
    """A page for logged-in users with one of `roles`; others are sent to log in (or refused).

    `json=True` marks an endpoint that page scripts fetch: it answers 401/403 in the API's JSON
    envelope instead of redirecting.
    """

    def decorator(view):
        endpoint = f"web.{view.__name__}"
        if json:
            JSON_ENDPOINTS.add(endpoint)

        @wraps(view)
        def wrapper(*args, **kwargs):
            user = web_user()
            if user is None:
                if json:
                    raise APIError(401, "unauthorized", "登录已过期，请重新登录。")
                if request.method in SAFE_METHODS:
                    return redirect(url_for("web.login", next=_here()))
                flash("登录已过期，请重新登录。", "error")
                return redirect(url_for("web.login"))
            if roles and user.role not in roles:
                raise APIError(403, "forbidden", "你的账号不能打开这个页面。")
            return view(user, *args, **kwargs)

        return wrapper

    return decorator


def _here() -> str:
    path = request.full_path
    return path[:-1] if path.endswith("?") else path


def safe_next(target: str | None) -> str | None:
    """`target` when it is a path on this site (never another host), else None."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def home_url(user: User) -> str:
    return url_for(HOME_OF_ROLE.get(user.role, "web.login"))


# --- CSRF and error pages for this blueprint only ------------------------------------------------


@bp.before_request
def _check_csrf():
    """Every state-changing request of a page (form post or fetch) carries the session's CSRF token."""
    if request.method not in SAFE_METHODS:
        csrf.protect()


@bp.errorhandler(CSRFError)
def _csrf_error(error):
    if is_json_endpoint():
        return jsonify({"error": {"code": "csrf_failed", "message": "页面已过期，请刷新页面后重试。",
                                  "details": {}}}), 400
    return render_template("error.html", title="页面已过期", message="页面已过期或来源不明，请返回上一页，刷新后再试一次。",
                           user=web_user()), 400


@bp.errorhandler(APIError)
def _api_error(error: APIError):
    db.session.rollback()
    if is_json_endpoint():
        return jsonify({"error": {"code": error.code, "message": error.message, "details": error.details}}), error.status
    titles = {401: "请先登录", 403: "没有权限", 404: "找不到页面", 409: "操作未完成", 422: "操作未完成"}
    return render_template("error.html", title=titles.get(error.status, "出错了"), message=error.message,
                           user=web_user()), error.status


@bp.errorhandler(TooManyRequests)
def _too_many(error):
    message = "尝试次数过多，请 15 分钟后再试。"
    if request.endpoint == "web.login":
        return render_template("login.html", next=safe_next(request.args.get("next")), error=message,
                               username=""), 429
    return render_template("error.html", title="请稍后再试", message="操作过于频繁，请稍后再试。", user=web_user()), 429


# --- login, logout, home ------------------------------------------------------------------------


def _login_username() -> str:
    """The same rate-limit key as POST /api/v1/auth/login, so both count toward one limit."""
    return f"login-user:{str(request.form.get('username') or '').strip().lower()[:64]}"


@bp.route("/login", methods=["GET", "POST"])
@limiter.shared_limit(
    lambda: current_app.config["LOGIN_FAILURES_PER_USERNAME"],
    scope="auth.login",  # the API login's scope: failures through either count together
    key_func=_login_username,
    deduct_when=lambda response: response.status_code == 401,
    methods=["POST"],
)
@limiter.limit(lambda: current_app.config["LOGIN_ATTEMPTS_PER_ADDRESS"], methods=["POST"])
def login():
    """登录: username and password; back to the page that sent you here (or your home page)."""
    next_url = safe_next(request.values.get("next"))
    user = web_user()
    if request.method == "GET":
        if user is not None and next_url is None:
            return redirect(home_url(user))
        return render_template("login.html", next=next_url, error=None, username="")
    username = (request.form.get("username") or "").strip()
    password = request.form.get("password") or ""
    try:
        answer = auth_service.login(username=username, password=password)
    except APIError:
        db.session.rollback()
        return render_template("login.html", next=next_url, error="用户名或密码错误，请重新输入。",
                               username=username[:64]), 401
    account = db.session.get(User, answer["user"]["id"])
    session.clear()
    session["uid"] = account.id
    session["gen"] = account.token_generation
    request.environ[USER_ID_KEY] = account.id  # the access log names who logged in
    session.permanent = True
    return redirect(next_url or home_url(account))


@bp.route("/logout", methods=["POST"])
def logout():
    """退出登录."""
    session.clear()
    flash("已退出登录。", "info")
    return redirect(url_for("web.login"))


@bp.route("/")
def index():
    """The home page of the logged-in role (or the login page)."""
    user = web_user()
    if user is None:
        return redirect(url_for("web.login"))
    return redirect(home_url(user))
