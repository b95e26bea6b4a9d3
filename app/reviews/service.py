"""Review queue, decisions and appeals, competition claims with evidence, term close, adjustments.

A review holds one doubtful item: a flagged stay (after its exit) or a competition claim. A
teacher of the pupil's class or the school admin approves (the credit is written then) or rejects
with a reason (a reversal is written if a credit already stood). The pupil or a guardian may appeal
a rejection once, within 7 days; the school admin decides the appeal. Every step is a
ReviewEvent (who, what, when, why). A closed term refuses scans and approvals dated in it; only a
manual adjustment with a reason changes it afterwards.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import bindparam, select

from app.auth.models import TeacherClass, User
from app.checkins.models import Checkin
from app.common import SHANGHAI, iso
from app.credits import ledger
from app.credits.models import LedgerEntry
from app.credits.rules import local_date, school_year_of, term_bounds, term_of
from app.credits.service import credit_claim, credit_stay, reverse_entry
from app.db import utcnow
from app.errors import APIError, not_found
from app.extensions import db
from app.orgs.models import GuardianLink, Student
from app.reviews.models import CompetitionClaim, Review, ReviewEvent, TermClosure

APPEAL_DAYS = 7
MAX_EVIDENCE_BYTES = 10 * 1024 * 1024
# Evidence types by their first bytes (never by the file name).
MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"%PDF-", "application/pdf", ".pdf"),
)
LEVEL_LABELS = {"national": "国家级", "provincial": "省级", "city": "市级", "district": "区级", "school": "校级"}
AWARD_LABELS = {"first": "一等奖", "second": "二等奖", "third": "三等奖", "participation": "参与奖"}


# --- term close --------------------------------------------------------------------------------


_TERM_CLOSED = select(TermClosure.id).where(
    TermClosure.school_id == bindparam("school_id"),
    TermClosure.school_year == bindparam("school_year"),
    TermClosure.term == bindparam("term"),
)


def term_is_closed(school_id: int, moment) -> bool:
    """Whether the school's term containing `moment` (a datetime or a date) is closed (every scan asks)."""
    day = local_date(moment)
    params = {"school_id": school_id, "school_year": school_year_of(day), "term": term_of(day)}
    return db.session.scalar(_TERM_CLOSED, params) is not None


def _refuse_if_closed(school_id: int, moment) -> None:
    if term_is_closed(school_id, moment):
        raise APIError(422, "term_closed", "该学期已归档，不能再改动；如需更正，请由学校管理员录入调整记录并说明原因。")


def close_term(*, school_id: int, school_year: str, term: int, actor: User) -> TermClosure:
    """Freeze a school's term (409 if already closed)."""
    try:
        term_bounds(school_year, term)
    except ValueError as exc:
        raise APIError(422, "validation_error", str(exc)) from None
    exists = select(TermClosure).where(
        TermClosure.school_id == school_id, TermClosure.school_year == school_year, TermClosure.term == term
    )
    if db.session.scalar(exists) is not None:
        raise APIError(409, "term_already_closed", "该学期已经归档。")
    closure = TermClosure(school_id=school_id, school_year=school_year, term=term, closed_by=actor.id)
    db.session.add(closure)
    db.session.commit()
    return closure


def adjust(*, student: Student, amount, reason: str, school_year: str, term: int, actor: User,
           activity_kind: str | None = None) -> LedgerEntry:
    """A manual adjustment with a reason (the only change allowed in a closed term)."""
    first, last = term_bounds(school_year, term)
    today = local_date(utcnow())
    day = min(max(today, first), last)
    occurred_at = datetime.combine(day, time(12), tzinfo=SHANGHAI).astimezone(UTC)
    entry = ledger.append(
        student_id=student.id,
        kind="adjustment",
        amount=amount,
        source="manual",
        activity_kind=activity_kind,
        occurred_at=occurred_at,
        rule_version=_active_version(),
        explanation={"summary": f"人工调整 {amount:+.2f} 学分：{reason}", "reason": reason,
                     "school_year": school_year, "term": term},
        created_by=actor.id,
    )
    db.session.commit()
    return entry


def _active_version() -> str:
    from app.credits.service import active_rules

    return active_rules().version


# --- the queue ----------------------------------------------------------------------------------


def _event(review: Review, action: str, actor: User | None, reason: str | None = None) -> None:
    db.session.add(ReviewEvent(review_id=review.id, action=action, actor_id=actor.id if actor else None,
                               reason=reason))


def open_checkin_review(checkin: Checkin, student: Student) -> Review:
    """Queue a completed flagged stay for its class teacher (within the scan's transaction)."""
    review = Review(kind="checkin", student_id=student.id, school_id=student.school_id,
                    class_id=student.class_id, checkin_id=checkin.id, status="pending",
                    reasons=list(checkin.flags or []))
    db.session.add(review)
    db.session.flush()
    _event(review, "created", None, "；".join(flag["message"] for flag in review.reasons))
    return review


def visible_claim(user: User, claim_id: int) -> CompetitionClaim:
    """A claim whose pupil the user may see; a claim of another pupil answers exactly like a
    missing one (SPEC §2), so claim ids cannot be probed."""
    from app.auth.scope import get_student

    claim = db.session.get(CompetitionClaim, claim_id)
    try:
        if claim is not None:
            get_student(user, claim.student_id)
    except APIError as exc:
        if exc.status != 404:
            raise
        claim = None
    if claim is None:
        raise not_found("竞赛获奖认定")
    return claim


def review_filter(user: User):
    """Reviews a user may see and decide: their classes (teacher), their school (school admin)."""
    if user.role == "admin":
        return Review.id.is_not(None)
    if user.role == "school_admin":
        return Review.school_id == user.school_id
    if user.role == "teacher":
        return Review.class_id.in_(select(TeacherClass.class_id).where(TeacherClass.user_id == user.id))
    if user.role == "student":
        return Review.student_id == user.student_id
    if user.role == "guardian":
        return Review.student_id.in_(select(GuardianLink.student_id).where(GuardianLink.guardian_id == user.id))
    return Review.id.is_(None)


def get_review(user: User, review_id: int, *, lock: bool = False) -> Review:
    query = select(Review).where(Review.id == review_id, review_filter(user))
    if lock:
        query = query.with_for_update()
    review = db.session.scalar(query)
    if review is None:
        raise not_found("复核事项")
    return review


def review_view(review: Review) -> dict:
    """A review as the queue shows it, with what is being reviewed and its history."""
    view = {
        "id": review.id,
        "kind": review.kind,
        "student_id": review.student_id,
        "student_name": db.session.get(Student, review.student_id).name,
        "class_id": review.class_id,
        "status": review.status,
        "reasons": review.reasons,
        "created_at": iso(review.created_at),
        "decided_at": iso(review.decided_at),
        "decision_reason": review.decision_reason,
        "appeal_reason": review.appeal_reason,
        "appealed_at": iso(review.appealed_at),
        "appeal_deadline": iso(review.decided_at + timedelta(days=APPEAL_DAYS))
        if review.status == "rejected" and review.appealed_at is None and review.decided_at else None,
        "credit_entry_id": review.credit_entry_id,
        "history": [
            {"action": e.action, "actor_id": e.actor_id, "reason": e.reason, "at": iso(e.at)}
            for e in db.session.scalars(
                select(ReviewEvent).where(ReviewEvent.review_id == review.id).order_by(ReviewEvent.id)
            )
        ],
    }
    if review.checkin_id:
        checkin = db.session.get(Checkin, review.checkin_id)
        view["checkin"] = {
            "id": checkin.id, "activity_id": checkin.activity_id, "activity_title": checkin.activity.title,
            "venue_name": checkin.activity.venue.name, "entered_at": iso(checkin.entered_at),
            "exited_at": iso(checkin.exited_at), "minutes": checkin.minutes, "source": checkin.source,
            "device_id": checkin.device_id,
        }
    if review.claim_id:
        claim = db.session.get(CompetitionClaim, review.claim_id)
        view["claim"] = claim_view(claim)
    return view


def claim_view(claim: CompetitionClaim) -> dict:
    return {
        "id": claim.id, "student_id": claim.student_id, "competition": claim.competition, "level": claim.level,
        "level_label": LEVEL_LABELS[claim.level], "award": claim.award, "award_label": AWARD_LABELS[claim.award],
        "work_title": claim.work_title, "date": claim.awarded_on.isoformat(), "status": claim.status,
        "evidence_url": f"/api/v1/claims/{claim.id}/evidence", "evidence_type": claim.evidence_type,
    }


def queue(user: User, status: str):
    """The select of the caller's reviews with a status, oldest first."""
    return select(Review).where(review_filter(user), Review.status == status).order_by(Review.created_at, Review.id)


def decide(*, user: User, review_id: int, decision: str, reason: str | None) -> Review:
    """Approve or reject a review (a teacher or the school admin; appeals: the school admin)."""
    if user.role not in ("teacher", "school_admin", "admin"):
        raise APIError(403, "forbidden", "只有老师或学校管理员可以复核。")
    review = get_review(user, review_id, lock=True)
    if review.status == "appealed" and user.role == "teacher":
        raise APIError(403, "forbidden", "申诉由学校管理员处理。")
    if review.status == "rejected" or (review.status == "approved" and user.role == "teacher"):
        raise APIError(409, "already_decided", "该事项已处理；如有异议请走申诉流程。")
    if decision == "reject" and not (reason or "").strip():
        raise APIError(422, "validation_error", "驳回时请填写原因，学生和家长会看到。",
                       {"fields": {"reason": ["驳回时必须填写原因。"]}})
    if review.status == "approved" and decision == "approve":
        raise APIError(409, "already_decided", "该事项已通过。")
    ledger.lock_student(review.student_id)
    moment = _moment_of(review)
    _refuse_if_closed(review.school_id, moment)
    now = utcnow()
    if decision == "approve":
        entry = _approve(review, user)
        review.status, review.credit_entry_id = "approved", entry.id
    else:
        _reject(review, user, reason)
        review.status = "rejected"
    review.decided_by, review.decided_at, review.decision_reason = user.id, now, reason
    _event(review, "approved" if decision == "approve" else "rejected", user, reason)
    db.session.commit()
    return review


def _moment_of(review: Review):
    if review.checkin_id:
        return db.session.get(Checkin, review.checkin_id).entered_at
    return db.session.get(CompetitionClaim, review.claim_id).awarded_on


def _approve(review: Review, user: User) -> LedgerEntry:
    if review.checkin_id:
        checkin = db.session.get(Checkin, review.checkin_id)
        checkin.status = "completed"
        return credit_stay(checkin, actor_id=user.id)
    claim = db.session.get(CompetitionClaim, review.claim_id)
    claim.status = "approved"
    return credit_claim(claim, actor_id=user.id)


def _reject(review: Review, user: User, reason: str) -> None:
    if review.checkin_id:
        db.session.get(Checkin, review.checkin_id).status = "rejected"
    else:
        db.session.get(CompetitionClaim, review.claim_id).status = "rejected"
    if review.credit_entry_id:
        entry = db.session.get(LedgerEntry, review.credit_entry_id)
        if entry.amount != 0:
            reverse_entry(entry, reason=f"复核未通过：{reason}", actor_id=user.id)


def appeal(*, user: User, review_id: int, reason: str) -> Review:
    """The pupil or a guardian appeals a rejection: once, within 7 days of the decision."""
    if user.role not in ("student", "guardian"):
        raise APIError(403, "forbidden", "只有学生本人或家长可以申诉。")
    review = get_review(user, review_id, lock=True)
    if review.status != "rejected":
        raise APIError(409, "not_appealable", "只有未通过的复核可以申诉。")
    if review.appealed_at is not None:
        raise APIError(409, "already_appealed", "每项复核只能申诉一次。")
    if utcnow() > review.decided_at + timedelta(days=APPEAL_DAYS):
        raise APIError(422, "appeal_expired", "已超过 7 天申诉期限。")
    review.status, review.appeal_reason = "appealed", reason
    review.appealed_by, review.appealed_at = user.id, utcnow()
    _event(review, "appealed", user, reason)
    db.session.commit()
    return review


# --- competition claims -------------------------------------------------------------------------


def work_key(title: str) -> str:
    """The same work whatever its spelling: NFKC, case-folded, without spaces and punctuation."""
    text = unicodedata.normalize("NFKC", title).casefold()
    return re.sub(r"[\W_]+", "", text)[:200]


def sniff(data: bytes) -> tuple[str, str] | None:
    """(mime type, extension) from the file's first bytes, or None for anything else."""
    for magic, mime, ext in MAGIC:
        if data.startswith(magic):
            return mime, ext
    return None


def submit_claim(*, student: Student, actor: User, competition: str, level: str, award: str, work_title: str,
                 awarded_on, filename: str, data: bytes) -> tuple[CompetitionClaim, Review]:
    """Store the evidence (checked by content, random name, outside the web root) and queue a review."""
    if len(data) > MAX_EVIDENCE_BYTES:
        raise APIError(413, "payload_too_large", "证明材料不能超过 10 MB。")
    kind = sniff(data)
    if kind is None:
        raise APIError(422, "evidence_type", "证明材料须为 JPG、PNG 图片或 PDF 文件（按文件内容识别）。",
                       {"fields": {"evidence": ["文件内容不是 JPG、PNG 或 PDF。"]}})
    if awarded_on > local_date(utcnow()):
        raise APIError(422, "validation_error", "获奖日期不能晚于今天。", {"fields": {"date": ["获奖日期不能晚于今天。"]}})
    _refuse_if_closed(student.school_id, awarded_on)
    mime, ext = kind
    folder = Path(current_app.config["EVIDENCE_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{secrets.token_hex(16)}{ext}"
    (folder / name).write_bytes(data)
    claim = CompetitionClaim(
        student_id=student.id, competition=competition.strip(), level=level, award=award,
        work_title=work_title.strip(), work_key=work_key(work_title), awarded_on=awarded_on,
        evidence_name=(filename or name)[:200], evidence_path=name, evidence_type=mime,
        evidence_sha256=hashlib.sha256(data).hexdigest(), status="pending", submitted_by=actor.id,
    )
    db.session.add(claim)
    db.session.flush()
    message = f"竞赛获奖认定：{competition}（{LEVEL_LABELS[level]}{AWARD_LABELS[award]}），作品《{work_title}》"
    review = Review(kind="claim", student_id=student.id, school_id=student.school_id, class_id=student.class_id,
                    claim_id=claim.id, status="pending", reasons=[{"code": "competition_claim", "message": message}])
    db.session.add(review)
    db.session.flush()
    _event(review, "created", actor, message)
    db.session.commit()
    return claim, review


def evidence_file(claim: CompetitionClaim) -> Path:
    return Path(current_app.config["EVIDENCE_DIR"]) / claim.evidence_path
