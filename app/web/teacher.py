"""Teacher and school-admin pages: class progress (sortable, who is behind), Excel export, the review
queue (approve / reject with a reason, evidence viewable), and group check-in on a class trip."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

from flask import Response, flash, redirect, render_template, request, send_file, url_for
from sqlalchemy import func, select

from app.auth.models import TeacherClass
from app.auth.scope import get_class
from app.checkins import service as checkins
from app.common import SHANGHAI
from app.credits.rules import local_date, school_year_bounds
from app.db import utcnow
from app.errors import APIError
from app.extensions import db
from app.orgs.models import SchoolClass, Student
from app.reviews import service as reviews
from app.reviews.models import Review
from app.venues.models import Activity
from app.web import bp
from app.web.auth import page
from app.web.helpers import current_school_year, kind_label, local_time
from app.web.scan import device_id

SCHOOL_STAFF = ("teacher", "school_admin")
# The months in which credits are normally earned (September to June); "behind" compares a pupil
# with the share of the requirement expected by today at an even pace over them.
ACTIVE_DAYS = 303


def _classes(user) -> list[SchoolClass]:
    query = select(SchoolClass).order_by(SchoolClass.grade, SchoolClass.name)
    if user.role == "teacher":
        query = query.where(SchoolClass.id.in_(select(TeacherClass.class_id).where(TeacherClass.user_id == user.id)))
    else:
        query = query.where(SchoolClass.school_id == user.school_id)
    return db.session.scalars(query).all()


def expected_share(school_year: str, today: date) -> Decimal:
    """The share of the yearly requirement a pupil on an even pace has reached by `today` (0–1)."""
    first, _ = school_year_bounds(school_year)
    elapsed = (today - first).days + 1
    return min(max(Decimal(elapsed) / ACTIVE_DAYS, Decimal(0)), Decimal(1))


def _audit(user, student_ids, action: str) -> None:
    """Record a school staff read of pupils' records (SPEC §2), as the API routes do."""
    from app.audit.service import record_reads

    record_reads(user, list(student_ids), action)


@bp.route("/teacher")
@page(*SCHOOL_STAFF)
def teacher_home(user):
    """班级进度: one row per pupil, sortable, those behind highlighted; Excel export."""
    from app.transcripts import progress

    classes = _classes(user)
    school_year = current_school_year()
    klass = None
    wanted = request.args.get("class_id", type=int)
    if classes:
        klass = next((c for c in classes if c.id == wanted), classes[0])
    rows, counts = [], {"students": 0, "met": 0, "behind": 0, "flagged": 0}
    if klass is not None:
        rows = progress.rows(progress.class_students(klass.id), school_year)
        share = expected_share(school_year, local_date(utcnow()))
        for row in rows:
            row["behind"] = not row["met"] and Decimal(row["total"]) < Decimal(row["required"]) * share
            row["kind_labels"] = "、".join(kind_label(k) for k in row["kinds"])
        counts = {
            "students": len(rows),
            "met": sum(1 for r in rows if r["met"]),
            "behind": sum(1 for r in rows if r["behind"]),
            "flagged": sum(r["flagged"] for r in rows),
        }
        _audit(user, [r["student_id"] for r in rows], "progress")
    pending = db.session.scalar(
        select(func.count()).select_from(reviews.queue(user, "pending").subquery())
    )
    return render_template("teacher_home.html", classes=classes, klass=klass, rows=rows, counts=counts,
                           school_year=school_year, pending=pending)


@bp.route("/teacher/classes/<int:class_id>/progress.xlsx")
@page(*SCHOOL_STAFF)
def class_progress_xlsx(user, class_id: int):
    """The class's progress as an Excel file (Chinese headers, one row per pupil)."""
    from app.transcripts import progress

    klass = get_class(user, class_id)
    school_year = current_school_year()
    rows = progress.rows(progress.class_students(klass.id), school_year)
    _audit(user, [r["student_id"] for r in rows], "progress_export")
    body = progress.workbook([(klass, rows)], school_year)
    response = Response(body, mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    filename = f"progress-{klass.id}-{school_year}.xlsx"
    response.headers["Content-Disposition"] = f"attachment; filename={filename}"
    response.headers["Cache-Control"] = "no-store"
    return response


# --- review queue --------------------------------------------------------------------------------


@bp.route("/teacher/reviews")
@page(*SCHOOL_STAFF)
def review_queue(user):
    """复核: flagged stays and competition claims waiting for a decision (appeals: school admin)."""
    statuses = ["pending"] + (["appealed"] if user.role == "school_admin" else [])
    items = []
    for status in statuses:
        for review in db.session.scalars(reviews.queue(user, status)).all():
            items.append(_queue_view(review))
    recent = db.session.scalars(
        select(Review).where(reviews.review_filter(user), Review.status.in_(("approved", "rejected")))
        .order_by(Review.decided_at.desc(), Review.id.desc()).limit(8)
    ).all()
    _audit(user, {i["student_id"] for i in items}, "reviews")
    return render_template("review_queue.html", items=items, recent=[_queue_view(r) for r in recent])


def _queue_view(review: Review) -> dict:
    view = reviews.review_view(review)
    student = db.session.get(Student, review.student_id)
    view["class_name"] = student.school_class.name
    view["status_label"] = {"pending": "待复核", "approved": "复核通过", "rejected": "复核未通过",
                            "appealed": "申诉中"}[review.status]
    if view.get("claim"):
        view["claim"]["evidence_page"] = url_for("web.claim_evidence", claim_id=view["claim"]["id"])
    return view


@bp.route("/teacher/reviews/<int:review_id>", methods=["POST"])
@page(*SCHOOL_STAFF)
def decide_review(user, review_id: int):
    """Approve (the credit is written) or reject with a reason the family will read."""
    decision = request.form.get("decision")
    reason = (request.form.get("reason") or "").strip()[:500] or None
    if decision not in ("approve", "reject"):
        flash("请选择通过或不通过。", "error")
        return redirect(url_for("web.review_queue"))
    try:
        review = reviews.decide(user=user, review_id=review_id, decision=decision, reason=reason)
    except APIError as refusal:
        db.session.rollback()
        if refusal.status == 404:
            raise
        flash(refusal.message, "error")
        return redirect(url_for("web.review_queue") + f"#review-{review_id}")
    name = db.session.get(Student, review.student_id).name
    flash(f"已处理：{name} — {'复核通过，学分已计入' if decision == 'approve' else '复核未通过'}。", "info")
    return redirect(url_for("web.review_queue"))


@bp.route("/teacher/claims/<int:claim_id>/evidence")
@page(*SCHOOL_STAFF)
def claim_evidence(user, claim_id: int):
    """A competition claim's evidence file (image or PDF), for the pupil's teachers."""
    claim = reviews.visible_claim(user, claim_id)
    _audit(user, [claim.student_id], "evidence")
    response = send_file(reviews.evidence_file(claim), mimetype=claim.evidence_type,
                         download_name=claim.evidence_name)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self'"
    return response


# --- group check-in on a class trip ----------------------------------------------------------------


def _todays_activities(grade: int | None) -> list[Activity]:
    today = local_date(utcnow())
    start = datetime.combine(today, time.min, tzinfo=SHANGHAI)
    end = start + timedelta(days=1)
    rows = db.session.scalars(
        select(Activity).where(Activity.starts_at < end, Activity.ends_at > start)
        .order_by(Activity.venue_id, Activity.starts_at)
    ).all()
    return [a for a in rows if grade is None or grade in (a.grades or range(1, 10))]


@bp.route("/teacher/group", methods=["GET", "POST"])
@page("teacher")
def group_checkin(user):
    """集体签到: tick the pupils of a class, pick today's activity and 签到/签退, submit once."""
    classes = _classes(user)
    class_id = request.values.get("class_id", type=int)
    klass = next((c for c in classes if c.id == class_id), classes[0] if classes else None)
    activities = _todays_activities(klass.grade if klass else None)
    activity_id = request.values.get("activity_id", type=int)
    direction = request.values.get("direction") if request.values.get("direction") in ("entry", "exit") else "entry"
    students = db.session.scalars(
        select(Student).where(Student.class_id == klass.id, Student.active.is_(True))
        .order_by(Student.student_number)
    ).all() if klass else []
    results = None
    if request.method == "POST":
        chosen = [int(v) for v in request.form.getlist("student_id") if v.isdigit()]
        if not chosen or activity_id is None:
            flash("请选择活动并勾选学生。", "error")
        else:
            answers = checkins.group_checkin(user, activity_id, chosen, direction, device_id=device_id())
            names = {s.id: s.name for s in students}
            results = [{**a, "name": names.get(a["student_id"], str(a["student_id"]))} for a in answers]
            accepted = sum(1 for a in answers if a["status"] == "accepted")
            flash(f"{'签到' if direction == 'entry' else '签退'}完成：成功 {accepted} 人，未成功 {len(answers) - accepted} 人。",
                  "info")
    return render_template("group_checkin.html", classes=classes, klass=klass, activities=activities,
                           activity_id=activity_id, direction=direction, students=students, results=results,
                           local_time=local_time)
