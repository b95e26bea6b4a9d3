"""Login, token refresh, the current user, and account creation."""

from __future__ import annotations

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.auth import service
from app.auth.models import User
from app.auth.schemas import (
    InviteCodeSchema,
    LoginSchema,
    RefreshSchema,
    RegisterGuardianSchema,
    TokenPairSchema,
    UserSchema,
)
from app.auth.scope import current_user, roles_required
from app.common import PageArgs, error_responses, page_schema, paginate
from app.extensions import limiter
from app.orgs import service as orgs_service

blp = Blueprint("auth", __name__, url_prefix="/api/v1", description="登录与账号 Accounts and login")
PUBLIC = {"security": []}  # no token needed (and none checked)


def _login_username() -> str:
    body = request.get_json(silent=True)
    username = body.get("username") if isinstance(body, dict) else None
    return f"login-user:{str(username or '').strip().lower()[:64]}"


@blp.route("/auth/login", methods=["POST"])
@limiter.limit(
    lambda: current_app.config["LOGIN_FAILURES_PER_USERNAME"],
    key_func=_login_username,
    deduct_when=lambda response: response.status_code == 401,
)
@limiter.limit(lambda: current_app.config["LOGIN_ATTEMPTS_PER_ADDRESS"])
@blp.doc(**PUBLIC)
@blp.arguments(LoginSchema)
@blp.response(200, TokenPairSchema)
@error_responses(blp, 401, 429)
def login(body):
    """Exchange a username and password for an access and a refresh token."""
    return service.login(**body)


@blp.route("/auth/refresh", methods=["POST"])
@blp.doc(**PUBLIC)
@blp.arguments(RefreshSchema)
@blp.response(200, TokenPairSchema)
@error_responses(blp, 401)
def refresh(body):
    """Exchange a refresh token for a new token pair."""
    return service.refresh(**body)


@blp.route("/auth/register-guardian", methods=["POST"])
@limiter.limit(lambda: current_app.config["LOGIN_ATTEMPTS_PER_ADDRESS"])
@blp.doc(**PUBLIC)
@blp.arguments(RegisterGuardianSchema)
@blp.response(201, TokenPairSchema)
@error_responses(blp, 409, 429)
def register_guardian(body):
    """A parent creates an account with the invite code the school gave them."""
    user = orgs_service.register_guardian(**body)
    return service.login(username=user.username, password=body["password"])


@blp.route("/me", methods=["GET"])
@blp.response(200, UserSchema)
def me():
    """The logged-in account and the ids that define what it can see."""
    return service.user_view(current_user())


@blp.route("/me/children", methods=["POST"])
@roles_required("guardian")
@blp.arguments(InviteCodeSchema)
@blp.response(201, UserSchema)
def link_child(body):
    """A parent links one more child with an invite code."""
    user = current_user()
    orgs_service.link_child(guardian=user, code=body["code"])
    return service.user_view(user)


@blp.route("/users")
class Users(MethodView):
    @roles_required("admin", "school_admin")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_schema(UserSchema))
    def get(self, args):
        """Accounts: all for an admin, the school's own for a school admin."""
        user = current_user()
        query = select(User).order_by(User.id)
        if user.role == "school_admin":
            query = query.where(User.school_id == user.school_id)
        page = paginate(query, args)
        page["items"] = [service.user_view(u) for u in page["items"]]
        return page

    @roles_required("admin", "school_admin")
    @blp.arguments(UserSchema)
    @blp.response(201, UserSchema)
    @error_responses(blp, 409)
    def post(self, body):
        """Create an account (admin: any role; school admin: its school's students and teachers)."""
        return service.user_view(service.create_user(actor=current_user(), **body))
