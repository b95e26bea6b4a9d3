"""Scans: single, batch (offline staff devices), group (class trips), and a student's stays."""

from __future__ import annotations

from flask import current_app, jsonify, request
from flask_smorest import Blueprint
from marshmallow import ValidationError
from sqlalchemy import select

from app.auth.scope import current_user, get_student, roles_required, student_filter
from app.checkins import service
from app.checkins.models import Checkin
from app.checkins.schemas import BatchSchema, GroupCheckinSchema, HistoryArgs, ScanSchema
from app.common import paginate
from app.errors import APIError, not_found
from app.extensions import db, limiter
from app.orgs.models import Student
from app.venues.models import Activity

blp = Blueprint("checkins", __name__, url_prefix="/api/v1", description="签到与签退 Check-in and check-out")

REQUIRED_BY_MODE = {
    "self": ("code",),
    "guardian": ("code", "student_id"),
    "staff": ("student_pass", "activity_id", "direction"),
}
_scan_schema = ScanSchema()


def _scan_request(raw, actor, data: dict | None = None) -> service.ScanRequest:
    """Validate one scan body for the caller's mode (marshmallow ValidationError → 422)."""
    if not isinstance(raw, dict):
        raise ValidationError({"_schema": ["每条扫描记录必须是 JSON 对象。"]})
    if data is None:
        data = _scan_schema.load(raw)
    mode = service.mode_for(actor)
    missing = {name: ["此模式下必填。"] for name in REQUIRED_BY_MODE[mode] if data.get(name) in (None, "")}
    if missing:
        raise ValidationError(missing)
    return service.ScanRequest(
        actor=actor,
        source=mode,
        body=raw,
        device_id=(request.headers.get("X-Device-Id") or "")[:128] or None,
        **data,
    )


def _account_key() -> str:
    return f"scan-account:{current_user().id}"


def _device_key() -> str:
    return f"scan-device:{request.headers.get('X-Device-Id', '')[:128]}"


scan_limits = [
    limiter.limit(lambda: current_app.config["SCAN_LIMIT_PER_ACCOUNT"], key_func=_account_key),
    limiter.limit(lambda: current_app.config["SCAN_LIMIT_PER_DEVICE"], key_func=_device_key,
                  exempt_when=lambda: not request.headers.get("X-Device-Id")),
    limiter.limit(lambda: current_app.config["SCAN_LIMIT_PER_ADDRESS"]),
]


def limited(view):
    """Apply the scan rate limits (per account, per device, per address)."""
    for limit in scan_limits:
        view = limit(view)
    return view


@blp.route("/checkins", methods=["POST"])
@limited
@roles_required("student", "guardian", "venue_staff")
@blp.arguments(ScanSchema)
@blp.response(201)
def post_scan(body):
    """One scan: a student with a venue code, a guardian with a code and a child, or staff with a pass.

    201 accepted (with the credit when a stay completes), 200 replayed for the same nonce and body,
    422 refused with a reason code and a Chinese message, 409 for a reused nonce with another body.
    """
    actor = current_user()
    result = service.scan(_scan_request(request.get_json(), actor, body))
    return jsonify(result.body), result.status


@blp.route("/checkins/batch", methods=["POST"])
@limited
@roles_required("venue_staff")
@blp.arguments(BatchSchema)
@blp.response(200)
def post_batch(body):
    """Up to 500 scans from an offline staff device, answered in order; replaying changes nothing."""
    actor = current_user()
    results = []
    for raw in body["scans"]:
        nonce = raw.get("nonce") if isinstance(raw, dict) else None
        try:
            result = service.scan(_scan_request(raw, actor))
        except ValidationError as exc:
            results.append({"nonce": nonce, "status": "refused", "reason": "validation_error",
                            "message": "扫描记录格式有误。", "details": exc.messages, "checkin": None})
            continue
        except APIError as exc:
            db.session.rollback()
            results.append({"nonce": nonce, "status": "refused", "reason": exc.code, "message": exc.message,
                            "checkin": None})
            continue
        results.append(_batch_row(nonce, result))
    return {"results": results}


def _batch_row(nonce, result: service.ScanResult) -> dict:
    if "error" in result.body:
        error = result.body["error"]
        status = "replayed" if result.replayed else "refused"
        return {"nonce": nonce, "status": status, "reason": error["code"], "message": error["message"], "checkin": None}
    return {
        "nonce": nonce,
        "status": "replayed" if result.replayed else "accepted",
        "reason": None,
        "checkin": result.body["checkin"],
        "credit": result.body.get("credit"),
    }


@blp.route("/activities/<int:activity_id>/group-checkins", methods=["POST"])
@roles_required("teacher")
@blp.arguments(GroupCheckinSchema)
@blp.response(200)
def post_group(body, activity_id):
    """A teacher checks a class in or out on a trip; one result per student, in order."""
    actor = current_user()
    if db.session.get(Activity, activity_id) is None:
        raise not_found("科普活动")
    allowed = set(
        db.session.scalars(
            select(Student.id).where(Student.id.in_(body["student_ids"]), student_filter(actor))
        )
    )
    results = []
    for student_id in body["student_ids"]:
        if student_id not in allowed:
            results.append({"student_id": student_id, "status": "refused", "reason": "not_found",
                            "message": "找不到该学生（不在你任教的班级）。", "checkin": None})
            continue
        req = service.ScanRequest(
            actor=actor, source="group", student_id=student_id, activity_id=activity_id,
            direction=body["direction"], scanned_at=body.get("scanned_at"),
            body={"group": activity_id, "student_id": student_id, "direction": body["direction"]},
            device_id=(request.headers.get("X-Device-Id") or "")[:128] or None,
        )
        row = _batch_row(None, service.scan(req))
        row.pop("nonce")
        results.append({"student_id": student_id, **row})
    return {"results": results}


@blp.route("/students/<int:student_id>/checkins", methods=["GET"])
@roles_required("student", "guardian", "teacher", "school_admin")
@blp.arguments(HistoryArgs, location="query")
@blp.response(200)
def student_checkins(args, student_id):
    """A student's stays, newest first (未签退 ones say what to do)."""
    student = get_student(current_user(), student_id)
    page = paginate(
        select(Checkin).where(Checkin.student_id == student.id).order_by(Checkin.entered_at.desc()), args
    )
    page["items"] = [service.checkin_view(c) for c in page["items"]]
    return page
