"""The scan pipeline: a QR scan becomes a stay, a completed stay becomes a ledger credit.

One scan is one transaction: verify the code or pass, lock the student (so a student's scans
queue, whatever the concurrency), settle stale stays, open or close a stay, credit it, store the
scan with its answer, commit once. Refused scans are stored too, with their reason. A nonce makes
a scan idempotent: the same nonce and body replays the stored answer; a different body is a 409.

Times: a code scan (student or guardian) happens *now*, because the code itself is only valid for
60 s; a staff scan may carry `scanned_at` from an offline device (≤ 72 h old, ≤ 2 min ahead).
A stay must be closed by min(activity end, local midnight of its entry day); an exit scan up to
EXIT_GRACE later still closes it, the stay counting up to that deadline. An open stay past its
deadline becomes `no_exit` (未签退) when the student's next scan arrives or `flask checkins
expire` runs; a staff exit scan whose scanned_at lies within the stay may still complete it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from app.auth.models import StaffVenue, User
from app.checkins import integrity
from app.checkins.models import Checkin, Scan
from app.common import iso
from app.credits import ledger
from app.credits.rules import local_day_bounds, stay_minutes
from app.credits.service import active_rules, credit_stay
from app.db import utcnow
from app.errors import APIError, not_found
from app.extensions import db
from app.observability import SCANS
from app.orgs.models import GuardianLink, Student
from app.reviews.service import open_checkin_review, term_is_closed
from app.venues import codes
from app.venues.models import Activity

EXIT_GRACE = timedelta(minutes=30)
OPEN = ("open", "flagged")  # a stay without an exit yet; "flagged" ones wait for review afterwards
OFFLINE_MAX_AGE = timedelta(hours=72)
MAX_CLOCK_AHEAD = timedelta(minutes=2)

REASONS = {
    "code_invalid": "二维码无效，请扫描场馆屏幕上的签到二维码。",
    "code_expired": "二维码已过期，请扫描场馆屏幕上的最新二维码。",
    "pass_revoked": "这张学生码已作废，请出示最新的学生码（学生主页可查看，或请学校重新打印）。",
    "activity_not_open": "现在不在该活动的开放时间内，请在活动时间内签到或签退。",
    "activity_full": "该活动名额已满，请选择其他场次的科普活动。",
    "not_eligible": "该活动不面向你所在的年级，请选择适合你年级的科普活动。",
    "already_checked_in": "你已经签到过了，离开时请扫描签退二维码。",
    "not_checked_in": "没有找到未结束的签到记录，请先扫描签到二维码；若忘记签退，请联系场馆工作人员补签退。",
    "scanned_at_invalid": "扫描时间无效：离线记录须在 72 小时内上传，且不能比现在晚 2 分钟以上。",
    "not_guardian": "你不是该学生的监护人，不能为其签到。请先在家长主页绑定孩子。",
    "student_inactive": "该学生账号已停用，请联系学校老师。",
    "term_closed": "该学期已归档，不能再签到或签退，请联系学校老师。",
}

STATUS_LABELS = {
    "open": "已签到",
    "completed": "已完成",
    "no_exit": "未签退",
    "flagged": "待复核",
    "rejected": "复核未通过",
}


class Refused(Exception):
    """A scan refused with a SPEC reason code (answered 422 and stored)."""

    def __init__(self, reason: str, **details):
        super().__init__(reason)
        self.reason = reason
        self.details = details


@dataclass
class ScanRequest:
    """One scan as received: the body fields plus who sent it, from which device, in which mode."""

    actor: User
    source: str  # self | guardian | staff | group
    code: str | None = None
    student_id: int | None = None
    student_pass: str | None = None
    activity_id: int | None = None
    direction: str | None = None
    nonce: str | None = None
    scanned_at: datetime | None = None
    device_id: str | None = None
    body: dict = field(default_factory=dict)


@dataclass
class ScanResult:
    status: int  # 201 accepted, 200 replayed, 422 refused
    body: dict
    replayed: bool = False
    scan: Scan | None = None

    @property
    def accepted(self) -> bool:
        return self.status in (200, 201) and "checkin" in self.body


def request_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def mode_for(user: User) -> str:
    """The scan mode of a role: students scan for themselves, guardians for children, staff passes."""
    return {"student": "self", "guardian": "guardian", "venue_staff": "staff", "admin": "staff"}.get(user.role, "")


# --- the pipeline ---------------------------------------------------------------------------------

# Statements every scan runs, built once (SQLAlchemy then memoises their cache keys).
_REPLAY = select(Scan).where(Scan.actor_id == bindparam("actor_id"), Scan.nonce == bindparam("nonce"))
_STAFF_ACTIVITY = select(Activity).where(
    Activity.id == bindparam("activity_id"),
    Activity.venue_id.in_(select(StaffVenue.venue_id).where(StaffVenue.user_id == bindparam("user_id"))),
)
_OPEN_STAYS = select(Checkin).where(
    Checkin.student_id == bindparam("student_id"), Checkin.status.in_(OPEN), Checkin.exited_at.is_(None)
)
_EXIT_CANDIDATE = (
    select(Checkin)
    .where(
        Checkin.student_id == bindparam("student_id"),
        Checkin.activity_id == bindparam("activity_id"),
        Checkin.status.in_((*OPEN, "no_exit")),
        Checkin.exited_at.is_(None),
        Checkin.entered_at <= bindparam("when", type_=Checkin.entered_at.type),
    )
    .order_by(Checkin.entered_at.desc())
    .limit(1)
)


def scan(req: ScanRequest, *, now: datetime | None = None) -> ScanResult:
    """Process one scan in its own transaction and return the answer (also stored for replays)."""
    now = now or utcnow()
    digest = request_hash(req.body)
    student_id = activity_id = None
    try:
        target = _resolve(req, now)  # locks the student: every scan of one student queues here
        student_id, activity_id = target.student.id, target.activity.id
        replay = _replay(req, digest)
        if replay is not None:
            db.session.rollback()
            return replay
        with db.session.begin_nested():
            checkin, entry = _apply(req, target)
        body = {"checkin": checkin_view(checkin), "credit": credit_view(entry), "replayed": False}
        result = ScanResult(201, body)
        row = _store(req, digest, target.direction, student_id, activity_id, checkin.id, target.when, result, None,
                     now)
    except Refused as refusal:
        replay = _replay(req, digest)
        if replay is not None:
            db.session.rollback()
            return replay
        result = ScanResult(422, refusal_body(refusal))
        row = _store(req, digest, req.direction, student_id, activity_id, None, None, result, refusal.reason,
                     now)
    try:
        db.session.commit()
    except IntegrityError:
        # The same nonce won a race in another transaction: answer with what it stored.
        db.session.rollback()
        replay = _replay(req, digest)
        if replay is None:
            raise
        return replay
    result.scan = row
    SCANS.labels("accepted" if result.status == 201 else "refused", row.reason or "").inc()
    return result


def refusal_body(refusal: Refused) -> dict:
    return {"error": {"code": refusal.reason, "message": REASONS[refusal.reason], "details": refusal.details}}


def _replay(req: ScanRequest, digest: str) -> ScanResult | None:
    """The stored answer for this actor's nonce (409 if the body differs), or None."""
    if not req.nonce:
        return None
    row = db.session.scalar(_REPLAY, {"actor_id": req.actor.id, "nonce": req.nonce})
    if row is None:
        return None
    if row.request_hash != digest:
        raise APIError(409, "nonce_reused", "同一个 nonce 已用于另一条不同的扫描记录。", {"nonce": req.nonce})
    body = dict(row.response_body)
    if row.response_status == 201:
        return ScanResult(200, {**body, "replayed": True}, replayed=True, scan=row)
    error = dict(body["error"])
    error["details"] = {**error.get("details", {}), "replayed": True}
    return ScanResult(row.response_status, {"error": error}, replayed=True, scan=row)


def _store(req, digest, direction, student_id, activity_id, checkin_id, when, result, reason, now) -> Scan:
    row = Scan(
        actor_id=req.actor.id,
        nonce=req.nonce or f"server-{uuid.uuid4().hex}",
        request_hash=digest,
        source=req.source,
        direction=direction if direction in codes.DIRECTIONS else None,
        student_id=student_id,
        activity_id=activity_id,
        checkin_id=checkin_id,
        device_id=req.device_id,
        scanned_at=when or req.scanned_at,
        received_at=now,
        successful=reason is None,
        reason=reason,
        response_status=result.status,
        response_body=result.body,
    )
    db.session.add(row)
    return row


@dataclass
class Target:
    student: Student
    activity: Activity
    direction: str
    when: datetime


def _resolve(req: ScanRequest, now: datetime) -> Target:
    """Who is scanned, where, which way and when — or the reason the scan cannot be used.

    The student's row is locked here; everything after it sees the student's latest state.
    """
    if req.source in ("staff", "group"):
        if req.source == "staff":
            student_id, version = _verify_pass(req.student_pass)
        else:
            student_id, version = req.student_id, None
        activity = _activity(req.activity_id, staff=req.actor if req.source == "staff" else None)
        student = ledger.lock_student(student_id)
        if student is None:
            raise Refused("code_invalid")
        if version is not None and version != student.pass_version:
            raise Refused("pass_revoked")
        target = Target(student, activity, req.direction, _offline_time(req.scanned_at, now))
    else:
        try:
            activity_id, direction = codes.verify_venue_code(req.code or "", now)
        except codes.CodeRefused as exc:
            raise Refused(exc.reason) from None
        activity = db.session.get(Activity, activity_id)
        if activity is None:
            raise Refused("code_invalid")
        student = ledger.lock_student(_code_student_id(req))
        if req.scanned_at is not None and abs(req.scanned_at - now) > MAX_CLOCK_AHEAD:
            raise Refused("scanned_at_invalid", scanned_at=iso(req.scanned_at))
        target = Target(student, activity, direction, now)
    return _checked(target)


def _verify_pass(token: str | None) -> tuple[int, int]:
    try:
        return codes.verify_pass(token or "")
    except codes.CodeRefused as exc:
        raise Refused(exc.reason) from None


def _activity(activity_id: int | None, staff: User | None) -> Activity:
    """The activity (with its venue); for venue staff only one of their own venues' (else 404)."""
    if not activity_id:
        activity = None
    elif staff is not None and staff.role != "admin":
        activity = db.session.scalar(_STAFF_ACTIVITY, {"activity_id": activity_id, "user_id": staff.id})
    else:
        activity = db.session.get(Activity, activity_id)
    if activity is None:
        raise not_found("科普活动")
    return activity


def _code_student_id(req: ScanRequest) -> int:
    if req.source == "self":
        return req.actor.student_id
    if req.student_id is None or db.session.get(GuardianLink, (req.actor.id, req.student_id)) is None:
        raise Refused("not_guardian", student_id=req.student_id)
    return req.student_id


def _offline_time(scanned_at: datetime | None, now: datetime) -> datetime:
    if scanned_at is None:
        return now
    if scanned_at > now + MAX_CLOCK_AHEAD or scanned_at < now - OFFLINE_MAX_AGE:
        raise Refused("scanned_at_invalid", scanned_at=iso(scanned_at))
    return min(scanned_at, now)


def _checked(target: Target) -> Target:
    """Refusals that depend only on the student and the activity."""
    student, activity = target.student, target.activity
    if not student.active:
        raise Refused("student_inactive")
    if student.grade not in (activity.grades or range(1, 10)):
        raise Refused("not_eligible", grade=student.grade, grades=activity.grades)
    if not activity.venue.active:
        raise Refused("activity_not_open")
    if term_is_closed(student.school_id, target.when):
        raise Refused("term_closed")
    return target


def _apply(req: ScanRequest, target: Target) -> tuple[Checkin, object | None]:
    """Open or close a stay (the student is locked); returns the stay and its ledger entry, if any."""
    if target.direction == "entry":
        return _enter(req, target), None
    return _exit(req, target)


def deadline_of(activity: Activity, entered_at: datetime) -> datetime:
    """When a stay must end: the activity's end or local midnight of the entry day, the earlier."""
    return min(activity.ends_at, local_day_bounds(entered_at)[1])


def expire_stale(student_id: int, now: datetime) -> int:
    """Mark the student's stays open past their deadline (and grace) as no_exit; returns how many."""
    stale = db.session.scalars(
        select(Checkin).where(
            Checkin.student_id == student_id,
            Checkin.status.in_(OPEN),
            Checkin.exited_at.is_(None),
            Checkin.deadline < now - EXIT_GRACE,
        )
    ).all()
    for checkin in stale:
        checkin.status = "no_exit"
    return len(stale)


def expire_all(now: datetime | None = None) -> int:
    """Mark every stay open past its deadline (and grace) as no_exit, for all students."""
    now = now or utcnow()
    stale = db.session.scalars(
        select(Checkin).where(
            Checkin.status.in_(OPEN), Checkin.exited_at.is_(None), Checkin.deadline < now - EXIT_GRACE
        )
    ).all()
    for checkin in stale:
        checkin.status = "no_exit"
    return len(stale)


def _enter(req: ScanRequest, target: Target) -> Checkin:
    student, activity, when = target.student, target.activity, target.when
    if not (activity.starts_at <= when <= activity.ends_at):
        raise Refused("activity_not_open", starts_at=iso(activity.starts_at), ends_at=iso(activity.ends_at))
    open_stays = db.session.scalars(_OPEN_STAYS, {"student_id": student.id}).all()
    for stay in open_stays:
        if stay.activity_id == activity.id and stay.entered_at <= when <= stay.deadline + EXIT_GRACE:
            raise Refused("already_checked_in", checkin_id=stay.id, entered_at=iso(stay.entered_at))
    for stay in open_stays:
        # Past its deadline, or a forgotten sign-out elsewhere: that stay ends as 未签退 and
        # does not block this visit.
        if stay.deadline < when - EXIT_GRACE or (stay.activity_id != activity.id and stay.entered_at <= when):
            stay.status = "no_exit"
    from app.matching.bookings import link_attendance, seat_for_entry

    # Bookings and walk-ins share the capacity (app/matching/bookings.py): one query, after locking
    # the activity row when it has a capacity; a booked pupil always has their seat.
    seat = seat_for_entry(activity, student)
    if seat.full:
        raise Refused("activity_full", capacity=activity.capacity)
    flags = integrity.entry_flags(rules=active_rules(), source=req.source, device_id=req.device_id,
                                  student_id=student.id, activity=activity, when=when)
    checkin = Checkin(
        student_id=student.id,
        activity_id=activity.id,
        venue_id=activity.venue_id,
        entered_at=when,
        deadline=deadline_of(activity, when),
        source=req.source,
        device_id=req.device_id,
        status="flagged" if flags else "open",
        flags=[flag.as_dict() for flag in flags],
        created_by=req.actor.id,
    )
    checkin.activity = activity
    db.session.add(checkin)
    db.session.flush()
    link_attendance(seat, checkin)  # a booked pupil's check-in links to the booking
    return checkin


def _exit(req: ScanRequest, target: Target):
    student, activity, when = target.student, target.activity, target.when
    if when > activity.ends_at + EXIT_GRACE and req.source != "staff":
        raise Refused("activity_not_open", starts_at=iso(activity.starts_at), ends_at=iso(activity.ends_at))
    checkin = db.session.scalar(
        _EXIT_CANDIDATE, {"student_id": student.id, "activity_id": activity.id, "when": when}
    )
    if checkin is None or when > checkin.deadline + EXIT_GRACE:
        expire_stale(student.id, when)
        raise Refused("not_checked_in")
    checkin.exited_at = min(when, checkin.deadline)
    checkin.minutes = stay_minutes(checkin.entered_at, checkin.exited_at)
    checkin.exit_source = req.source
    if checkin.flags:
        checkin.status = "flagged"  # waits for a teacher; credited when approved
        db.session.flush()
        open_checkin_review(checkin, target.student)
        return checkin, None
    checkin.status = "completed"
    db.session.flush()
    return checkin, credit_stay(checkin, actor_id=req.actor.id)


# --- many scans at once: an offline device's batch, a teacher's class trip ------------------------
# Shared by the JSON API (routes.py) and the web pages (app/web), so both answer the same way.

REQUIRED_BY_MODE = {
    "self": ("code",),
    "guardian": ("code", "student_id"),
    "staff": ("student_pass", "activity_id", "direction"),
}


def scan_request(raw, actor: User, data: dict | None = None, *, device_id: str | None = None) -> ScanRequest:
    """One scan body, validated for the caller's mode (marshmallow ValidationError when it is not)."""
    from marshmallow import ValidationError

    from app.checkins.schemas import ScanSchema

    if not isinstance(raw, dict):
        raise ValidationError({"_schema": ["每条扫描记录必须是 JSON 对象。"]})
    if data is None:
        data = ScanSchema().load(raw)
    mode = mode_for(actor)
    missing = {name: ["此模式下必填。"] for name in REQUIRED_BY_MODE[mode] if data.get(name) in (None, "")}
    if missing:
        raise ValidationError(missing)
    return ScanRequest(actor=actor, source=mode, body=raw, device_id=(device_id or "")[:128] or None, **data)


def batch(actor: User, scans: list, *, device_id: str | None = None) -> list[dict]:
    """Staff scans from an offline device, each in its own transaction, answered in order."""
    from marshmallow import ValidationError

    results = []
    for raw in scans:
        nonce = raw.get("nonce") if isinstance(raw, dict) else None
        try:
            result = scan(scan_request(raw, actor, device_id=device_id))
        except ValidationError as exc:
            results.append({"nonce": nonce, "status": "refused", "reason": "validation_error",
                            "message": "扫描记录格式有误。", "details": exc.messages, "checkin": None})
            continue
        except APIError as exc:
            db.session.rollback()
            results.append({"nonce": nonce, "status": "refused", "reason": exc.code, "message": exc.message,
                            "checkin": None})
            continue
        results.append(batch_row(nonce, result))
    return results


def batch_row(nonce, result: ScanResult) -> dict:
    """One scan's line in a batch or group answer: accepted, replayed or refused (with the reason)."""
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


def group_checkin(actor: User, activity_id: int, student_ids: list[int], direction: str, *,
                  scanned_at: datetime | None = None, device_id: str | None = None,
                  nonce: str | None = None) -> list[dict]:
    """A teacher checks pupils of their classes in or out on a trip; one result per pupil, in order."""
    from app.auth.scope import student_filter

    if db.session.get(Activity, activity_id) is None:
        raise not_found("科普活动")
    allowed = set(db.session.scalars(select(Student.id).where(Student.id.in_(student_ids), student_filter(actor))))
    results = []
    for student_id in student_ids:
        if student_id not in allowed:
            results.append({"student_id": student_id, "status": "refused", "reason": "not_found",
                            "message": "找不到该学生（不在你任教的班级）。", "checkin": None})
            continue
        body = {"group": activity_id, "student_id": student_id, "direction": direction,
                "scanned_at": scanned_at.isoformat() if scanned_at else None}
        req = ScanRequest(
            actor=actor, source="group", student_id=student_id, activity_id=activity_id, direction=direction,
            scanned_at=scanned_at, body=body, device_id=(device_id or "")[:128] or None,
            nonce=f"{nonce}:{student_id}" if nonce else None,
        )
        row = batch_row(None, scan(req))
        row.pop("nonce")
        results.append({"student_id": student_id, **row})
    return results


# --- views --------------------------------------------------------------------------------------


def checkin_view(checkin: Checkin) -> dict:
    activity = checkin.activity
    return {
        "id": checkin.id,
        "student_id": checkin.student_id,
        "activity_id": checkin.activity_id,
        "activity_title": activity.title,
        "activity_kind": activity.kind,
        "venue_id": checkin.venue_id,
        "venue_name": activity.venue.name,
        "entered_at": iso(checkin.entered_at),
        "exited_at": iso(checkin.exited_at),
        "minutes": checkin.minutes,
        "source": checkin.source,
        "status": checkin.status,
        "status_label": STATUS_LABELS[checkin.status],
        "flags": list(checkin.flags or []),
    }


def credit_view(entry) -> dict | None:
    if entry is None:
        return None
    return {"amount": f"{entry.amount:.2f}", "entry_id": entry.id, "seq": entry.seq, "explanation": entry.explanation}
