"""Access and refresh tokens: short-lived HS256 JWTs (PyJWT) signed with SECRET_KEY."""

from __future__ import annotations

from datetime import timedelta

import jwt
from flask import current_app

from app.db import utcnow

ALGORITHM = "HS256"


class TokenError(Exception):
    """The token is missing, malformed, forged, expired or of the wrong type."""


def _encode(claims: dict, lifetime: timedelta) -> str:
    now = utcnow()
    payload = {**claims, "iat": now, "nbf": now, "exp": now + lifetime}
    return jwt.encode(payload, current_app.config["SECRET_KEY"], algorithm=ALGORITHM)


def issue_tokens(user) -> dict:
    """The login answer's token part for one user."""
    minutes = current_app.config["ACCESS_TOKEN_MINUTES"]
    access = _encode({"sub": str(user.id), "typ": "access", "role": user.role}, timedelta(minutes=minutes))
    refresh = _encode(
        {"sub": str(user.id), "typ": "refresh", "gen": user.token_generation},
        timedelta(days=current_app.config["REFRESH_TOKEN_DAYS"]),
    )
    return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer", "expires_in": minutes * 60}


def decode(token: str, expected_type: str) -> dict:
    """Verified claims of a token of the expected type; TokenError otherwise (alg none included)."""
    try:
        claims = jwt.decode(
            token,
            current_app.config["SECRET_KEY"],
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sub", "typ"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token_expired") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenError("token_invalid") from exc
    if claims.get("typ") != expected_type:
        raise TokenError("token_invalid")
    return claims
