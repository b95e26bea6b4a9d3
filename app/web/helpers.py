"""What several pages share: the words for codes, local times, a pupil's year at a glance."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from flask import Blueprint, url_for
from sqlalchemy import select

from app.checkins.models import Checkin
from app.checkins.service import STATUS_LABELS
from app.common import SHANGHAI
from app.credits.models import LedgerEntry
from app.credits.rules import ACTIVITY_KIND_LABELS, local_date, school_year_of
from app.db import utcnow
from app.extensions import db
from app.orgs.models import Student
from app.reviews.models import Review
from app.transcripts.service import transcript

DIRECTION_LABELS = {"entry": "签到", "exit": "签退"}
REVIEW_STATUS_LABELS = {"pending": "待复核", "approved": "复核通过", "rejected": "复核未通过", "appealed": "申诉中"}
NO_EXIT_HINT = "未签退：这次停留不计学分。如果确实参加了，请在 72 小时内请场馆工作人员补签退。"
RECENT_LIMIT = 8


def current_school_year() -> str:
    return school_year_of(local_date(utcnow()))


def local_time(value, fmt: str = "%m-%d %H:%M") -> str:
    """An aware datetime (or ISO string) as Asia/Shanghai wall-clock time."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(SHANGHAI).strftime(fmt)


def kind_label(kind: str | None) -> str:
    if kind in (None, "other"):
        return "其他"
    return ACTIVITY_KIND_LABELS.get(kind, kind)


def new_nonce() -> str:
    return str(uuid.uuid4())


def mask_name(name: str) -> str:
    """王小明 → 王*明, 李雷 → 李*: enough for staff to confirm a pass, not a full identity."""
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def register_template_helpers(bp: Blueprint) -> None:
    from app.web.auth import ROLE_LABELS, web_user

    bp.add_app_template_filter(local_time, "local")
    bp.add_app_template_filter(kind_label, "kind_label")

    @bp.app_context_processor
    def _inject():
        from flask import request

        if request.blueprint != "web":
            return {}
        user = web_user()
        return {
            "user": user,
            "role_label": ROLE_LABELS.get(user.role, "") if user else "",
            "nav": navigation(user),
            "DIRECTION_LABELS": DIRECTION_LABELS,
            "REVIEW_STATUS_LABELS": REVIEW_STATUS_LABELS,
        }


def navigation(user) -> list[tuple[str, str]]:
    """The links in the top bar for a role: (label, url)."""
    if user is None:
        return []
    role = user.role
    if role == "student":
        return [("我的学分", url_for("web.student_home"))]
    if role == "guardian":
        return [("孩子的学分", url_for("web.guardian_home"))]
    if role in ("teacher", "school_admin"):
        links = [("班级进度", url_for("web.teacher_home")), ("复核", url_for("web.review_queue"))]
        if role == "teacher":
            links.append(("集体签到", url_for("web.group_checkin")))
        return links
    if role == "venue_staff":
        return [("今日活动", url_for("web.venue_home")), ("扫学生码", url_for("web.pass_scanner"))]
    if role in ("district_officer", "city_officer", "admin"):
        return [("统计看板", url_for("web.bureau_home"))]
    return []


# --- a pupil's year at a glance (student and guardian homes) ------------------------------------


def recent_activities(student_id: int, limit: int = RECENT_LIMIT) -> list[dict]:
    """The pupil's latest stays, each with its credit and the reason in words."""
    stays = db.session.scalars(
        select(Checkin).where(Checkin.student_id == student_id)
        .order_by(Checkin.entered_at.desc(), Checkin.id.desc()).limit(limit)
    ).all()
    entries: dict[int, list[LedgerEntry]] = {}
    if stays:
        for entry in db.session.scalars(
            select(LedgerEntry).where(
                LedgerEntry.student_id == student_id, LedgerEntry.source == "checkin",
                LedgerEntry.source_id.in_([s.id for s in stays]),
            ).order_by(LedgerEntry.seq)
        ):
            entries.setdefault(entry.source_id, []).append(entry)
    reviews = {
        r.checkin_id: r for r in db.session.scalars(
            select(Review).where(Review.checkin_id.in_([s.id for s in stays]))
        )
    } if stays else {}
    out = []
    for stay in stays:
        credited = entries.get(stay.id, [])
        amount = sum((e.amount for e in credited), Decimal("0")) if credited else None
        review = reviews.get(stay.id)
        out.append({
            "id": stay.id,
            "title": stay.activity.title,
            "venue": stay.activity.venue.name,
            "kind": stay.activity.kind,
            "entered_at": stay.entered_at,
            "exited_at": stay.exited_at,
            "minutes": stay.minutes,
            "status": stay.status,
            "status_label": STATUS_LABELS[stay.status],
            "amount": None if amount is None else f"{amount:.2f}",
            "why": _why(stay, credited, review),
        })
    return out


def _why(stay: Checkin, credited: list[LedgerEntry], review: Review | None) -> str:
    if credited:
        summaries = [e.explanation.get("summary", "") for e in credited if e.explanation]
        return "；".join(s for s in summaries if s)
    if stay.status == "no_exit":
        return NO_EXIT_HINT
    if stay.status == "open":
        return "已签到，离开时请扫描场馆的签退二维码。"
    if stay.status == "flagged":
        flags = "；".join(flag.get("message", "") for flag in stay.flags or [])
        tail = "签退后由老师复核，通过后计入学分。" if stay.exited_at is None else "等待老师复核，通过后计入学分。"
        return f"{flags}。{tail}" if flags else tail
    if stay.status == "rejected":
        reason = review.decision_reason if review else None
        return f"复核未通过：{reason}" if reason else "复核未通过，不计学分。"
    return ""


def reviews_for(student_id: int) -> list[dict]:
    """The pupil's reviews a family follows: open ones, and rejections (appealable for 7 days)."""
    from app.reviews.service import review_view

    rows = db.session.scalars(
        select(Review).where(Review.student_id == student_id, Review.status.in_(("pending", "appealed", "rejected")))
        .order_by(Review.created_at.desc(), Review.id.desc()).limit(10)
    ).all()
    out = []
    for review in rows:
        view = review_view(review)
        view["status_label"] = REVIEW_STATUS_LABELS[review.status]
        view["appealable"] = review.status == "rejected" and view["appeal_deadline"] is not None and \
            datetime.fromisoformat(view["appeal_deadline"]) > utcnow()
        view["what"] = _review_subject(view)
        out.append(view)
    return out


def _review_subject(view: dict) -> str:
    if view.get("checkin"):
        c = view["checkin"]
        return f"{c['venue_name']} · {c['activity_title']}（{local_time(c['entered_at'])}）"
    if view.get("claim"):
        c = view["claim"]
        return f"竞赛获奖认定：{c['competition']} {c['level_label']}{c['award_label']}"
    return "复核事项"


def year_summary(student: Student, school_year: str) -> dict:
    """Progress against the yearly requirement in words: total, required, kinds done and missing."""
    data = transcript(student, school_year)
    total, required = Decimal(data["total"]), Decimal(data["required"])
    by_kind = {k: v for k, v in data["by_kind"].items() if Decimal(v) != 0}
    return {
        "student": data["student"],
        "school_year": school_year,
        "total": data["total"],
        "required": data["required"],
        "met": data["met"],
        "percent": int(min(total / required, Decimal(1)) * 100) if required > 0 else 100,
        "kinds": [kind_label(k) for k in data["kinds"]],
        "by_kind": [(kind_label(k), v) for k, v in sorted(by_kind.items())],
        "hint": data["missing"]["hint"],
        "missing_credits": data["missing"]["credits"],
        "other_entries": [
            {"occurred_at": e["occurred_at"], "amount": e["amount"], "summary": e["explanation"].get("summary", ""),
             "kind": e["kind"]}
            for e in reversed(data["entries"]) if e["source"] != "checkin"
        ][:5],
    }
