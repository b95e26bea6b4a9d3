"""Scans: single, batch (offline staff devices), group (class trips), and a student's stays."""

from __future__ import annotations

from flask import current_app, jsonify, request
from flask_smorest import Blueprint
from sqlalchemy import select

from app.audit.service import record_read
from app.auth.scope import current_user, get_student, roles_required
from app.checkins import service
from app.checkins.models import Checkin
from app.checkins.schemas import (
    BatchSchema,
    CheckinSchema,
    GroupCheckinSchema,
    HistoryArgs,
    ScanLinesSchema,
    ScanResultSchema,
    ScanSchema,
)
from app.common import documents, error_responses, page_schema, paginate
from app.extensions import limiter

blp = Blueprint("checkins", __name__, url_prefix="/api/v1", description="签到与签退 Check-in and check-out")


def _device_id() -> str | None:
    return request.headers.get("X-Device-Id")


def _scan_request(raw, actor, data: dict | None = None) -> service.ScanRequest:
    """Validate one scan body for the caller's mode (marshmallow ValidationError → 422)."""
    return service.scan_request(raw, actor, data, device_id=_device_id())


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


# The scan routes pass schema instances: given a class, webargs builds a new schema on every request
# (~0.1 ms of a scan).
@blp.route("/checkins", methods=["POST"])
@limited
@roles_required("student", "guardian", "venue_staff")
@blp.arguments(ScanSchema())
@blp.response(201)
@documents(blp, 201, ScanResultSchema, "accepted (with the credit when a stay completes)")
@documents(blp, 200, ScanResultSchema, "the same nonce and body again: the first answer, replayed")
@error_responses(blp, 404, 409, 429)
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
@blp.arguments(BatchSchema())
@blp.response(200)
@documents(blp, 200, ScanLinesSchema)
@error_responses(blp, 429)
def post_batch(body):
    """Up to 500 scans from an offline staff device, answered in order; replaying changes nothing."""
    return {"results": service.batch(current_user(), body["scans"], device_id=_device_id())}


@blp.route("/activities/<int:activity_id>/group-checkins", methods=["POST"])
@roles_required("teacher")
@blp.arguments(GroupCheckinSchema)
@blp.response(200)
@documents(blp, 200, ScanLinesSchema)
@error_responses(blp, 409)
def post_group(body, activity_id):
    """A teacher checks a class in or out on a trip; one result per student, in order.

    With a `nonce`, repeating the same request (a retry on a flaky network) replays every answer.
    """
    results = service.group_checkin(current_user(), activity_id, body["student_ids"], body["direction"],
                                    scanned_at=body.get("scanned_at"), device_id=_device_id(),
                                    nonce=body.get("nonce"))
    return {"results": results}


@blp.route("/students/<int:student_id>/checkins", methods=["GET"])
@roles_required("student", "guardian", "teacher", "school_admin")
@blp.arguments(HistoryArgs, location="query")
@blp.response(200)
@documents(blp, 200, page_schema(CheckinSchema))
def student_checkins(args, student_id):
    """A student's stays, newest first (未签退 ones say what to do)."""
    user = current_user()
    student = get_student(user, student_id)
    record_read(user, student, "checkins")
    page = paginate(
        select(Checkin).where(Checkin.student_id == student.id).order_by(Checkin.entered_at.desc()), args
    )
    page["items"] = [service.checkin_view(c) for c in page["items"]]
    return page
