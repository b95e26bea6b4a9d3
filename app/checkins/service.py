"""The scan pipeline: a QR scan becomes a stay, a completed stay becomes a ledger credit.

One scan is one transaction: verify the code or pass, lock the student (so a student's scans
queue, whatever the concurrency), settle stale stays, open or close a stay, credit it, store the
scan with its answer, commit once. Refused scans are stored too, with their reason (and nothing
else: whatever the pipeline wrote before it found the reason is rolled back). A nonce makes
a scan idempotent: the same nonce and body replays the stored answer; a different body is a 409.

Times: a code scan (student or guardian) happens *now*, because the code itself is only valid for
60 s; a staff scan may carry `scanned_at` from an offline device (≤ 72 h old, ≤ 2 min ahead).
A stay must be closed by min(activity end, local midnight of its entry day); an exit scan up to
EXIT_GRACE later still closes it, the stay counting up to that deadline. An open stay past its
deadline becomes `no_exit` (未签退) when the student's next accepted entry arrives or `flask
checkins expire` runs; a staff exit scan whose scanned_at lies within the stay may still complete it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, exists, insert, literal, literal_column, select, update
from sqlalchemy.exc import IntegrityError

from app.auth.models import StaffVenue, User
from app.checkins import integrity
from app.checkins.models import Checkin, Scan
from app.checkins.schemas import ScanSchema
from app.common import iso
from app.credits import ledger
from app.credits.models import RuleVersion
from app.credits.rules import local_date, local_day_bounds, school_year_of, stay_minutes, term_of
from app.credits.service import credit_stay, rules_named
from app.db import READ_FIRST_ENDPOINTS, Prepared, end_read_phase, utcnow
from app.errors import APIError, not_found
from app.extensions import db
from app.matching.models import Booking
from app.observability import SCANS
from app.orgs.models import GuardianLink, Student
from app.reviews.models import TermClosure
from app.reviews.service import open_checkin_review
from app.venues import codes
from app.venues.models import Activity, Venue

# SQLite has one write lock for the whole database: a scan authenticates and reads the activity
# without it and takes it only to lock the pupil and write (_resolve calls end_read_phase).
READ_FIRST_ENDPOINTS.update({"checkins.post_scan", "checkins.post_batch"})

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
    scan_id: int | None = None  # the stored scan (the original one for a replay)

    @property
    def accepted(self) -> bool:
        return self.status in (200, 201) and "checkin" in self.body


def request_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def mode_for(user: User) -> str:
    """The scan mode of a role: students scan for themselves, guardians for children, staff passes."""
    return {"student": "self", "guardian": "guardian", "venue_staff": "staff", "admin": "staff"}.get(user.role, "")


# --- the pipeline ---------------------------------------------------------------------------------
# Every scan runs these, so they are Core statements compiled once per dialect and run on the
# session's DBAPI connection (app.db.Prepared) returning plain rows: an ORM load or flush, or even
# Session.execute, costs several times the statement itself, and on SQLite the whole write part
# of a scan holds the one write lock.


@dataclass(slots=True)
class VenueRow:
    id: int
    name: str
    kind: str
    level: str
    active: bool
    latitude: float | None
    longitude: float | None


@dataclass(slots=True)
class ActivityRow:
    id: int
    venue_id: int
    kind: str
    title: str
    starts_at: datetime
    ends_at: datetime
    min_minutes: int
    capacity: int | None
    grades: list | None
    has_bookings: bool
    venue: VenueRow


@dataclass(slots=True)
class StudentRow:
    """The scanned pupil, read under their lock, with what the scan asks about them."""

    id: int
    school_id: int
    class_id: int
    grade: int
    active: bool
    pass_version: int
    term_closed: bool  # the school's term of the scan is closed
    rule_version: str | None  # the active rule set


@dataclass(slots=True)
class Stay:
    """A check-in as the scan sees it (the attributes of a Checkin that views and credits read)."""

    id: int
    student_id: int
    activity_id: int
    venue_id: int
    entered_at: datetime
    exited_at: datetime | None
    deadline: datetime
    minutes: int | None
    source: str
    exit_source: str | None
    device_id: str | None
    status: str
    flags: list
    activity: ActivityRow


_V = Venue.__table__.c
_A = Activity.__table__.c
_C = Checkin.__table__.c
_REPLAY = Prepared(select(Scan.__table__.c.id, Scan.__table__.c.request_hash, Scan.__table__.c.response_status,
                          Scan.__table__.c.response_body).where(
    Scan.__table__.c.actor_id == bindparam("actor_id"), Scan.__table__.c.nonce == bindparam("nonce")))
_ACTIVITY_COLUMNS = (
    _A.id, _A.venue_id, _A.kind, _A.title, _A.starts_at, _A.ends_at, _A.min_minutes, _A.capacity, _A.grades,
    exists().where(Booking.__table__.c.activity_id == _A.id).label("has_bookings"),
    _V.name, _V.kind.label("venue_kind"), _V.level, _V.active, _V.latitude, _V.longitude,
)
_ACTIVITY_SELECT = select(*_ACTIVITY_COLUMNS).join_from(
    Activity.__table__, Venue.__table__, _V.id == _A.venue_id).where(_A.id == bindparam("activity_id"))
_ACTIVITY = Prepared(_ACTIVITY_SELECT)
_STAFF_ACTIVITY = Prepared(_ACTIVITY_SELECT.where(
    _A.venue_id.in_(select(StaffVenue.venue_id).where(StaffVenue.user_id == bindparam("user_id")))))
_S = Student.__table__.c
_TC = TermClosure.__table__.c
_RULE_VERSION = (select(RuleVersion.version).where(RuleVersion.active.is_(True)).limit(1).scalar_subquery()
                 .label("rule_version"))
_LOCK_STUDENT_SELECT = (
    select(_S.id, _S.school_id, _S.class_id, _S.grade, _S.active, _S.pass_version)
    .where(_S.id == bindparam("student_id"))
    .with_for_update(of=Student.__table__)
)
_LOCK_STUDENT = Prepared(_LOCK_STUDENT_SELECT)


def _term_closed(school_id):
    return exists().where(_TC.school_id == school_id, _TC.school_year == bindparam("school_year"),
                          _TC.term == bindparam("term")).label("term_closed")


# What the scan asks besides the pupil: on PostgreSQL read by a statement of its own once the lock
# is held. A SELECT … FOR UPDATE that waited for the lock sees the locked row fresh but the rest of
# the statement as it was when it started, so a term closed or a rule set activated meanwhile would
# be missed. SQLite takes its write lock before any read: one statement does both there.
_STUDENT_FACTS = Prepared(select(_term_closed(bindparam("school_id")), _RULE_VERSION))
_LOCK_STUDENT_AND_FACTS = Prepared(select(
    *_LOCK_STUDENT_SELECT.selected_columns, _term_closed(_S.school_id), _RULE_VERSION,
).where(_S.id == bindparam("student_id")))
_IS_GUARDIAN = Prepared(select(literal(1)).where(GuardianLink.guardian_id == bindparam("guardian_id"),
                                                 GuardianLink.student_id == bindparam("student_id")))
_STAY_COLUMNS = (_C.id, _C.student_id, _C.activity_id, _C.venue_id, _C.entered_at, _C.exited_at, _C.deadline,
                 _C.minutes, _C.source, _C.exit_source, _C.device_id, _C.status, _C.flags)


def _statuses(*names: str):
    """A fixed IN list written into the SQL (Prepared statements take no expanding lists)."""
    return [literal_column(f"'{name}'") for name in names]


_OPEN_STAYS = Prepared(select(*_STAY_COLUMNS).where(
    _C.student_id == bindparam("student_id"), _C.status.in_(_statuses(*OPEN)), _C.exited_at.is_(None)))
_EXIT_CANDIDATE = Prepared(
    select(*_STAY_COLUMNS)
    .where(
        _C.student_id == bindparam("student_id"),
        _C.activity_id == bindparam("activity_id"),
        _C.status.in_(_statuses(*OPEN, "no_exit")),
        _C.exited_at.is_(None),
        _C.entered_at <= bindparam("when", type_=_C.entered_at.type),
    )
    .order_by(_C.entered_at.desc())
    .limit(1)
)
_INSERT_CHECKIN = Prepared(insert(Checkin.__table__).returning(_C.id), keys=(
    "student_id", "activity_id", "venue_id", "entered_at", "deadline", "source", "device_id", "status", "flags",
    "created_by", "created_at"))
_CLOSE_STAY = Prepared(update(Checkin.__table__).where(_C.id == bindparam("stay_id")).values(
    exited_at=bindparam("exited_at", type_=_C.exited_at.type), minutes=bindparam("minutes"),
    exit_source=bindparam("exit_source"), status=bindparam("status")))
_NO_EXIT = update(Checkin.__table__).where(_C.id.in_(bindparam("ids", expanding=True))).values(status="no_exit")
_INSERT_SCAN = Prepared(insert(Scan.__table__).returning(Scan.__table__.c.id), keys=(
    "actor_id", "nonce", "request_hash", "source", "direction", "student_id", "activity_id", "checkin_id",
    "device_id", "scanned_at", "received_at", "successful", "reason", "response_status", "response_body"))


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
        stay, entry = _apply(req, target)
        body = {"checkin": checkin_view(stay), "credit": credit_view(entry), "replayed": False}
        result = ScanResult(201, body)
        stored = dict(direction=target.direction, student_id=student_id, activity_id=activity_id,
                      checkin_id=stay.id, when=target.when, reason=None)
    except Refused as refusal:
        # A refused scan changes nothing but the scan log: undo what the pipeline wrote before it
        # found the reason (a stay marked 未签退, a seat lock), then store the refusal.
        db.session.rollback()
        end_read_phase(db.session)  # SQLite: the refusal is stored by a write transaction
        replay = _replay(req, digest)
        if replay is not None:
            db.session.rollback()
            return replay
        result = ScanResult(422, refusal_body(refusal))
        stored = dict(direction=req.direction, student_id=student_id, activity_id=activity_id, checkin_id=None,
                      when=None, reason=refusal.reason)
    try:
        result.scan_id = _store(req, digest, result, now, **stored)
        db.session.commit()
    except IntegrityError:
        # The same nonce won a race in another transaction: answer with what it stored.
        db.session.rollback()
        replay = _replay(req, digest)
        if replay is None:
            raise
        return replay
    SCANS.labels("accepted" if result.status == 201 else "refused", stored["reason"] or "").inc()
    return result


def refusal_body(refusal: Refused) -> dict:
    return {"error": {"code": refusal.reason, "message": REASONS[refusal.reason], "details": refusal.details}}


def _replay(req: ScanRequest, digest: str) -> ScanResult | None:
    """The stored answer for this actor's nonce (409 if the body differs), or None."""
    if not req.nonce:
        return None
    row = _REPLAY.first(db.session, {"actor_id": req.actor.id, "nonce": req.nonce})
    if row is None:
        return None
    if row.request_hash != digest:
        raise APIError(409, "nonce_reused", "同一个 nonce 已用于另一条不同的扫描记录。", {"nonce": req.nonce})
    body = dict(row.response_body)
    if row.response_status == 201:
        return ScanResult(200, {**body, "replayed": True}, replayed=True, scan_id=row.id)
    error = dict(body["error"])
    error["details"] = {**error.get("details", {}), "replayed": True}
    return ScanResult(row.response_status, {"error": error}, replayed=True, scan_id=row.id)


def _store(req, digest, result, now, *, direction, student_id, activity_id, checkin_id, when, reason) -> int:
    """Store the scan with its answer (a duplicate nonce raises IntegrityError here); returns its id."""
    return _INSERT_SCAN.scalar_one(db.session, {
        "actor_id": req.actor.id,
        "nonce": req.nonce or f"server-{uuid.uuid4().hex}",
        "request_hash": digest,
        "source": req.source,
        "direction": direction if direction in codes.DIRECTIONS else None,
        "student_id": student_id,
        "activity_id": activity_id,
        "checkin_id": checkin_id,
        "device_id": req.device_id,
        "scanned_at": when or req.scanned_at,
        "received_at": now,
        "successful": reason is None,
        "reason": reason,
        "response_status": result.status,
        "response_body": result.body,
    })


@dataclass
class Target:
    student: StudentRow
    activity: ActivityRow
    direction: str
    when: datetime

    @property
    def rules(self):
        if self.student.rule_version is None:
            raise APIError(503, "no_active_rules", "尚未启用学分规则，请管理员运行 flask rules load。")
        return rules_named(self.student.rule_version)


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
        end_read_phase(db.session)  # SQLite: what follows runs under the write lock
        try:
            when, bad_time = _offline_time(req.scanned_at, now), None
        except Refused as refusal:
            when, bad_time = now, refusal
        student = _lock_student(student_id, when)
        if student is None:
            raise Refused("code_invalid")
        if version is not None and version != student.pass_version:
            raise Refused("pass_revoked")
        if bad_time is not None:
            raise bad_time
        target = Target(student, activity, req.direction, when)
    else:
        try:
            activity_id, direction = codes.verify_venue_code(req.code or "", now)
        except codes.CodeRefused as exc:
            raise Refused(exc.reason) from None
        activity = _load_activity(_ACTIVITY, {"activity_id": activity_id})
        if activity is None:
            raise Refused("code_invalid")
        end_read_phase(db.session)  # SQLite: what follows runs under the write lock
        student = _lock_student(_code_student_id(req), now)
        if req.scanned_at is not None and abs(req.scanned_at - now) > MAX_CLOCK_AHEAD:
            raise Refused("scanned_at_invalid", scanned_at=iso(req.scanned_at))
        target = Target(student, activity, direction, now)
    return _checked(target)


def _lock_student(student_id: int | None, when: datetime) -> StudentRow | None:
    """Lock the pupil (ledger.lock_student's lock, as a plain row), with the term and rules facts."""
    if student_id is None:
        return None
    day = local_date(when)
    params = {"student_id": student_id, "school_year": school_year_of(day), "term": term_of(day)}
    if db.session.get_bind().dialect.name == "sqlite":
        row = facts = _LOCK_STUDENT_AND_FACTS.first(db.session, params)
        if row is None:
            return None
    else:
        row = _LOCK_STUDENT.first(db.session, params)
        if row is None:
            return None
        facts = _STUDENT_FACTS.first(db.session, {**params, "school_id": row.school_id})
    ledger.mark_locked(student_id)
    return StudentRow(row.id, row.school_id, row.class_id, row.grade, bool(row.active), row.pass_version,
                      bool(facts.term_closed), facts.rule_version)


def _load_activity(statement: Prepared, params) -> ActivityRow | None:
    row = statement.first(db.session, params)
    if row is None:
        return None
    venue = VenueRow(row.venue_id, row.name, row.venue_kind, row.level, bool(row.active), row.latitude,
                     row.longitude)
    return ActivityRow(row.id, row.venue_id, row.kind, row.title, row.starts_at, row.ends_at, row.min_minutes,
                       row.capacity, row.grades, bool(row.has_bookings), venue)


def _verify_pass(token: str | None) -> tuple[int, int]:
    try:
        return codes.verify_pass(token or "")
    except codes.CodeRefused as exc:
        raise Refused(exc.reason) from None


def _activity(activity_id: int | None, staff: User | None) -> ActivityRow:
    """The activity (with its venue); for venue staff only one of their own venues' (else 404)."""
    activity = None
    if activity_id:
        if staff is not None and staff.role != "admin":
            activity = _load_activity(_STAFF_ACTIVITY, {"activity_id": activity_id, "user_id": staff.id})
        else:
            activity = _load_activity(_ACTIVITY, {"activity_id": activity_id})
    if activity is None:
        raise not_found("科普活动")
    return activity


def _code_student_id(req: ScanRequest) -> int:
    if req.source == "self":
        return req.actor.student_id
    if req.student_id is None or _IS_GUARDIAN.first(
            db.session, {"guardian_id": req.actor.id, "student_id": req.student_id}) is None:
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
    if student.term_closed:
        raise Refused("term_closed")
    return target


def _apply(req: ScanRequest, target: Target) -> tuple[Stay, object | None]:
    """Open or close a stay (the student is locked); returns the stay and its ledger entry, if any."""
    if target.direction == "entry":
        return _enter(req, target), None
    return _exit(req, target)


def deadline_of(activity: Activity, entered_at: datetime) -> datetime:
    """When a stay must end: the activity's end or local midnight of the entry day, the earlier."""
    return min(activity.ends_at, local_day_bounds(entered_at)[1])


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


def _enter(req: ScanRequest, target: Target) -> Stay:
    student, activity, when = target.student, target.activity, target.when
    if not (activity.starts_at <= when <= activity.ends_at):
        raise Refused("activity_not_open", starts_at=iso(activity.starts_at), ends_at=iso(activity.ends_at))
    open_stays = _OPEN_STAYS.rows(db.session, {"student_id": student.id})
    for stay in open_stays:
        if stay.activity_id == activity.id and stay.entered_at <= when <= stay.deadline + EXIT_GRACE:
            raise Refused("already_checked_in", checkin_id=stay.id, entered_at=iso(stay.entered_at))
    # Past its deadline, or a forgotten sign-out elsewhere: that stay ends as 未签退 and does not
    # block this visit.
    forgotten = [stay.id for stay in open_stays
                 if stay.deadline < when - EXIT_GRACE or (stay.activity_id != activity.id and stay.entered_at <= when)]
    if forgotten:
        db.session.execute(_NO_EXIT, {"ids": forgotten})
    from app.matching.bookings import Seat, link_attendance, seat_for_entry

    # Bookings and walk-ins share the capacity (app/matching/bookings.py): one query, after locking
    # the activity row when it has a capacity; a booked pupil always has their seat. An activity
    # without a capacity and without bookings has nothing to look up.
    seat = seat_for_entry(activity, student) if activity.capacity is not None or activity.has_bookings else Seat()
    if seat.full:
        raise Refused("activity_full", capacity=activity.capacity)
    flags = [flag.as_dict() for flag in integrity.entry_flags(
        rules=target.rules, source=req.source, device_id=req.device_id, student_id=student.id, activity=activity,
        when=when)]
    stay = Stay(id=0, student_id=student.id, activity_id=activity.id, venue_id=activity.venue_id, entered_at=when,
                exited_at=None, deadline=deadline_of(activity, when), minutes=None, source=req.source,
                exit_source=None, device_id=req.device_id, status="flagged" if flags else "open", flags=flags,
                activity=activity)
    stay.id = _INSERT_CHECKIN.scalar_one(db.session, {
        "student_id": stay.student_id, "activity_id": stay.activity_id, "venue_id": stay.venue_id,
        "entered_at": when, "deadline": stay.deadline, "source": stay.source, "device_id": stay.device_id,
        "status": stay.status, "flags": flags, "created_by": req.actor.id, "created_at": utcnow(),
    })
    link_attendance(seat, stay)  # a booked pupil's check-in links to the booking
    return stay


def _exit(req: ScanRequest, target: Target):
    student, activity, when = target.student, target.activity, target.when
    if when > activity.ends_at + EXIT_GRACE and req.source != "staff":
        raise Refused("activity_not_open", starts_at=iso(activity.starts_at), ends_at=iso(activity.ends_at))
    row = _EXIT_CANDIDATE.first(db.session, {"student_id": student.id, "activity_id": activity.id, "when": when})
    if row is None or when > row.deadline + EXIT_GRACE:
        raise Refused("not_checked_in")
    stay = Stay(**row._asdict(), activity=activity)
    stay.exited_at = min(when, stay.deadline)
    stay.minutes = stay_minutes(stay.entered_at, stay.exited_at)
    stay.exit_source = req.source
    stay.status = "flagged" if stay.flags else "completed"  # a flagged one waits for a teacher
    _CLOSE_STAY.execute(db.session, {"stay_id": stay.id, "exited_at": stay.exited_at, "minutes": stay.minutes,
                                     "exit_source": stay.exit_source, "status": stay.status})
    if stay.flags:
        open_checkin_review(stay, student)
        return stay, None
    return stay, credit_stay(stay, actor_id=req.actor.id, rules=target.rules)


# --- many scans at once: an offline device's batch, a teacher's class trip ------------------------
# Shared by the JSON API (routes.py) and the web pages (app/web), so both answer the same way.

REQUIRED_BY_MODE = {
    "self": ("code",),
    "guardian": ("code", "student_id"),
    "staff": ("student_pass", "activity_id", "direction"),
}


# One instance for every scan of a batch: marshmallow schemas load reentrantly, and building one
# costs more than the load itself.
_SCAN_SCHEMA = ScanSchema()


def scan_request(raw, actor: User, data: dict | None = None, *, device_id: str | None = None) -> ScanRequest:
    """One scan body, validated for the caller's mode (marshmallow ValidationError when it is not)."""
    from marshmallow import ValidationError

    if not isinstance(raw, dict):
        raise ValidationError({"_schema": ["每条扫描记录必须是 JSON 对象。"]})
    if data is None:
        data = _SCAN_SCHEMA.load(raw)
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


def checkin_view(checkin: Checkin | Stay) -> dict:
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
