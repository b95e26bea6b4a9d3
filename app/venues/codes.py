"""Signed venue codes (rotating every 30 s) and student passes, and their QR images.

Both are compact HS256 JWTs (PyJWT) signed with keys derived from SIGNING_KEY, one key per
purpose, so a pass can never pass for a venue code or the other way round. A venue code names
an activity, a direction and a 30-second window; it is accepted in its own window and the next
one, so a screenshot is useless after at most 60 s. A pass names a student and a pass version;
reissuing a pass bumps the version and so revokes every older pass.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt
import qrcode
import qrcode.image.svg
from flask import current_app

WINDOW_SECONDS = 30
DIRECTIONS = ("entry", "exit")


class CodeRefused(Exception):
    """A token that cannot be used; `reason` is a SPEC §4.2 reason code."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _key(purpose: str) -> bytes:
    secret = current_app.config["SIGNING_KEY"].encode()
    return hmac.new(secret, f"qr-token:{purpose}".encode(), hashlib.sha256).digest()


def window_of(moment: datetime) -> int:
    return math.floor(moment.timestamp() / WINDOW_SECONDS)


def _decode(token: str, purpose: str) -> dict:
    try:
        claims = jwt.decode(token, _key(purpose), algorithms=["HS256"], options={"verify_exp": False})
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise CodeRefused("code_invalid") from None
    if claims.get("p") != purpose:
        raise CodeRefused("code_invalid")
    return claims


@dataclass(frozen=True)
class VenueCode:
    token: str
    url: str
    expires_at: datetime


def venue_code(activity_id: int, direction: str, now: datetime) -> VenueCode:
    """The code to display now for one activity and direction."""
    window = window_of(now)
    token = jwt.encode({"p": "v", "a": activity_id, "d": direction, "w": window}, _key("v"), algorithm="HS256")
    expires = datetime.fromtimestamp((window + 2) * WINDOW_SECONDS, UTC)
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return VenueCode(token=token, url=f"{base}/s/{token}", expires_at=expires)


def verify_venue_code(token: str, now: datetime) -> tuple[int, str]:
    """(activity_id, direction) of a valid, fresh venue code; CodeRefused otherwise."""
    claims = _decode(token, "v")
    activity_id, direction, window = claims.get("a"), claims.get("d"), claims.get("w")
    if not isinstance(activity_id, int) or direction not in DIRECTIONS or not isinstance(window, int):
        raise CodeRefused("code_invalid")
    current = window_of(now)
    if window > current + 1:  # more than one window ahead: not a clock skew, a forgery attempt
        raise CodeRefused("code_invalid")
    if window < current - 1:
        raise CodeRefused("code_expired")
    return activity_id, direction


def student_pass(student_id: int, version: int) -> str:
    return jwt.encode({"p": "s", "s": student_id, "v": version}, _key("s"), algorithm="HS256")


def verify_pass(token: str) -> tuple[int, int]:
    """(student_id, pass_version) of a well-signed pass; revocation is checked by the caller."""
    claims = _decode(token, "s")
    student_id, version = claims.get("s"), claims.get("v")
    if not isinstance(student_id, int) or not isinstance(version, int):
        raise CodeRefused("code_invalid")
    return student_id, version


def qr_png(data: str, box_size: int = 10) -> bytes:
    image = qrcode.make(data, box_size=box_size, border=2)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def qr_svg(data: str) -> bytes:
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue()
