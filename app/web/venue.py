"""Venue staff pages: today's activities, the full-screen rotating QR display, and the pass scanner.

The display page's script asks `code.json` for the current code just after each 30-second window
starts (the server says when: `refresh_at`, and its own clock `now`, so a wrong clock on the
display PC does not matter) and swaps the QR image; a code is accepted in its own window and the
next, so the picture on the screen is always valid.

The scanner page queues every scan in the browser (localStorage) with its nonce and `scanned_at`
and uploads the queue to `scan/upload`, which runs the same batch logic as
POST /api/v1/checkins/batch (`checkins.service.batch`); a scan whose upload failed stays queued
and goes up again when the network returns — the nonce makes a repeated upload a replay.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from flask import Response, current_app, jsonify, render_template, request, url_for
from sqlalchemy import func, select

from app.auth.models import StaffVenue
from app.auth.scope import get_managed_activity
from app.checkins import service as checkins
from app.checkins.models import Checkin
from app.common import SHANGHAI, iso
from app.credits.rules import local_date
from app.db import utcnow
from app.errors import APIError, not_found
from app.extensions import db
from app.orgs.models import Student
from app.venues import codes
from app.venues.models import Activity, Venue
from app.web import bp
from app.web.auth import page
from app.web.helpers import mask_name

STAFF = ("venue_staff", "admin")
MAX_UPLOAD = 500
UPCOMING_DAYS, UPCOMING_LIMIT = 7, 12


def _direction() -> str:
    return "exit" if request.args.get("direction") == "exit" else "entry"


def todays_activities(user, *, days_ahead: int = 0) -> list[Activity]:
    """The activities of the staff member's venues running at some point today (Asia/Shanghai), or,
    with `days_ahead`, those starting after today and within that many days."""
    today = datetime.combine(local_date(utcnow()), time.min, tzinfo=SHANGHAI)
    tomorrow = today + timedelta(days=1)
    query = select(Activity).join(Venue)
    if days_ahead:
        query = query.where(Activity.starts_at >= tomorrow, Activity.starts_at < tomorrow + timedelta(days=days_ahead))
    else:
        query = query.where(Activity.starts_at < tomorrow, Activity.ends_at > today)
    if user.role != "admin":
        query = query.where(Venue.id.in_(select(StaffVenue.venue_id).where(StaffVenue.user_id == user.id)))
    return db.session.scalars(query.order_by(Activity.starts_at, Venue.name, Activity.id)).all()


@bp.route("/venue")
@page(*STAFF)
def venue_home(user):
    """今日活动: each with its entry/exit display and the pass scanner, and who is inside now."""
    activities = todays_activities(user)
    inside = dict(db.session.execute(
        select(Checkin.activity_id, func.count()).where(
            Checkin.activity_id.in_([a.id for a in activities]), Checkin.status.in_(("open", "flagged")),
            Checkin.exited_at.is_(None),
        ).group_by(Checkin.activity_id)
    ).all()) if activities else {}
    upcoming = todays_activities(user, days_ahead=UPCOMING_DAYS)[:UPCOMING_LIMIT]
    return render_template("venue_home.html", activities=activities, inside=inside, now=utcnow(), upcoming=upcoming)


@bp.route("/venue/activities/<int:activity_id>/display")
@page(*STAFF)
def venue_display(user, activity_id: int):
    """签到码大屏: the rotating venue code, full screen, readable from a few metres."""
    activity = get_managed_activity(user, activity_id)
    direction = _direction()
    return render_template("venue_display.html", activity=activity, direction=direction,
                           code_url=url_for("web.venue_code_json", activity_id=activity.id, direction=direction))


@bp.route("/venue/activities/<int:activity_id>/code.json")
@page(*STAFF, json=True)
def venue_code_json(user, activity_id: int):
    """The code to show now: {token, url, expires_at, refresh_at, now, image} (image: its QR as SVG)."""
    activity = get_managed_activity(user, activity_id)
    direction = _direction()
    now = utcnow()
    code = codes.venue_code(activity.id, direction, now)
    window_seconds = codes.WINDOW_SECONDS
    refresh_at = datetime.fromtimestamp((codes.window_of(now) + 1) * window_seconds, tz=SHANGHAI)
    response = jsonify({
        "token": code.token,
        "url": code.url,
        "expires_at": iso(code.expires_at),
        "refresh_at": iso(refresh_at),
        "now": iso(now),
        "image": url_for("web.venue_code_svg", activity_id=activity.id, token=code.token),
    })
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/venue/activities/<int:activity_id>/code.svg")
@page(*STAFF)
def venue_code_svg(user, activity_id: int):
    """The QR image of one still-valid code of this activity (the display page swaps these in)."""
    activity = get_managed_activity(user, activity_id)
    token = request.args.get("token") or ""
    try:
        code_activity, _ = codes.verify_venue_code(token, utcnow())
    except codes.CodeRefused:
        raise not_found("签到码") from None
    if code_activity != activity.id:
        raise not_found("签到码")
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    response = Response(codes.qr_svg(f"{base}/s/{token}"), mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/venue/scan")
@page(*STAFF)
def pass_scanner(user):
    """扫学生码: a USB scanner types into the field (or the phone camera reads the pass);
    scans queue in the browser and upload when the network allows."""
    activities = todays_activities(user)
    wanted = request.args.get("activity_id", type=int)
    selected = next((a for a in activities if a.id == wanted), activities[0] if activities else None)
    return render_template("venue_scan.html", activities=activities, selected=selected, direction=_direction())


@bp.route("/venue/scan/upload", methods=["POST"])
@page(*STAFF, json=True)
def scan_upload(user):
    """Queued scans from the scanner page: the batch logic of POST /api/v1/checkins/batch, with
    each answer's pupil shown by a masked name (王*明) for the staff to confirm."""
    body = request.get_json(silent=True)
    scans = body.get("scans") if isinstance(body, dict) else None
    if not isinstance(scans, list) or not 1 <= len(scans) <= MAX_UPLOAD:
        raise APIError(422, "validation_error", f"每次上传 1 到 {MAX_UPLOAD} 条扫描记录。")
    device = (request.headers.get("X-Device-Id") or "")[:128] or None
    results = checkins.batch(user, scans, device_id=device)
    student_ids = {r["checkin"]["student_id"] for r in results if r.get("checkin")}
    names = dict(db.session.execute(
        select(Student.id, Student.name).where(Student.id.in_(student_ids))
    ).all()) if student_ids else {}
    for row in results:
        checkin = row.get("checkin")
        row["label"] = mask_name(names.get(checkin["student_id"], "")) if checkin else ""
        if row["status"] in ("accepted", "replayed") and checkin:
            row["message"] = _accepted_message(checkin, row.get("credit"))
    return jsonify({"results": results})


def _accepted_message(checkin: dict, credit: dict | None) -> str:
    if checkin["exited_at"] is None:
        text = "签到成功"
        if checkin["status"] == "flagged":
            text += "（待复核）"
        return text
    text = f"签退成功，停留 {checkin['minutes']} 分钟"
    if credit is not None:
        text += f"，{credit['amount']} 学分"
    elif checkin["status"] == "flagged":
        text += "（待复核）"
    return text

