"""The pupil's home and the parent's home: this year's progress, recent activities with their
explanations, the student pass QR, reviews and appeals, the transcript PDF, recommended activities
and bookings (a parent books a recommended activity, or cancels a booking, in one tap)."""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, request
from sqlalchemy import select

from app.audit.service import record_read
from app.auth.scope import get_student
from app.common import MAX_ID
from app.errors import APIError, not_found
from app.extensions import db
from app.matching import bookings
from app.orgs.models import GuardianLink, Student
from app.reviews import service as reviews
from app.venues import codes
from app.venues.models import Activity
from app.web import bp
from app.web.auth import home_url, page
from app.web.helpers import current_school_year, recent_activities, reviews_for, year_summary


def _recommendations(student: Student) -> list[dict]:
    """The three upcoming activities that best close this pupil's gap (app.matching)."""
    from app.matching.recommend import recommendations

    items = recommendations(student, limit=3)["items"]
    return [
        {"activity_id": i["id"], "title": i["title"], "venue_name": (i.get("venue") or {}).get("name"),
         "starts_at": i.get("starts_at"), "reason": i.get("reason"), "seats_left": i.get("seats_left")}
        for i in items
    ]


@bp.route("/student")
@page("student")
def student_home(user):
    """学生主页: progress against the yearly requirement, recent activities, student pass, transcript."""
    student = db.session.get(Student, user.student_id)
    school_year = current_school_year()
    return render_template(
        "student_home.html",
        student=student,
        summary=year_summary(student, school_year),
        recent=recent_activities(student.id),
        reviews=reviews_for(student.id),
        recommendations=_recommendations(student),
        bookings=bookings.student_bookings(student),
    )


@bp.route("/guardian")
@page("guardian")
def guardian_home(user):
    """家长主页: one card per linked child with the same progress, reviews and appeals."""
    school_year = current_school_year()
    children = db.session.scalars(
        select(Student).join(GuardianLink, GuardianLink.student_id == Student.id)
        .where(GuardianLink.guardian_id == user.id).order_by(Student.grade.desc(), Student.id)
    ).all()
    cards = [
        {
            "student": child,
            "summary": year_summary(child, school_year),
            "recent": recent_activities(child.id, limit=4),
            "reviews": reviews_for(child.id),
            "recommendations": _recommendations(child),
            "bookings": bookings.student_bookings(child),
        }
        for child in children
    ]
    return render_template("guardian_home.html", cards=cards, school_year=school_year)


@bp.route("/students/<int:student_id>/pass")
@page("student", "guardian")
def student_pass_page(user, student_id: int):
    """学生码 full screen, bright and large, to hold up to a venue's scanner."""
    student = get_student(user, student_id)
    return render_template("student_pass.html", student=student)


@bp.route("/students/<int:student_id>/pass.svg")
@page("student", "guardian", "teacher", "school_admin")
def student_pass_svg(user, student_id: int):
    """The pupil's pass as an SVG QR code (the signed pass token, as venue scanners read it)."""
    student = get_student(user, student_id)
    record_read(user, student, "pass")
    svg = codes.qr_svg(codes.student_pass(student.id, student.pass_version))
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/students/<int:student_id>/transcript.pdf")
@page("student", "guardian", "teacher", "school_admin")
def transcript_pdf(user, student_id: int):
    """学分报告单 as a printable PDF with the QR code that verifies it."""
    from app.transcripts import pdf
    from app.transcripts.service import signed_transcript

    student = get_student(user, student_id)
    record_read(user, student, "transcript")
    school_year = request.args.get("school_year") or current_school_year()
    data = signed_transcript(student, school_year, actor_id=user.id)
    body = pdf.render(data)
    db.session.commit()
    response = Response(body, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f"inline; filename=transcript-{student.id}-{school_year}.pdf"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/children/<int:student_id>/bookings", methods=["POST"])
@page("guardian")
def book_for_child(user, student_id: int):
    """一键预约: a parent books one seat for a child (from a recommendation); full: the waiting list."""
    student = get_student(user, student_id)
    activity_id = request.form.get("activity_id", type=int) or 0
    activity = db.session.get(Activity, activity_id) if 0 < activity_id <= MAX_ID else None  # ids are 32-bit
    if activity is None:
        raise not_found("科普活动")
    try:
        booking = bookings.book_student(actor=user, activity=activity, student=student)
    except APIError as refusal:
        db.session.rollback()
        flash(f"{student.name}：{refusal.message}", "error")
        return redirect(home_url(user))
    view = bookings.booking_view(booking, names=True)
    flash(f"{student.name}：{bookings.booking_message(booking, view)}", "info")
    return redirect(home_url(user))


@bp.route("/bookings/<int:booking_id>/cancel", methods=["POST"])
@page("guardian")
def cancel_booking(user, booking_id: int):
    """取消预约: a parent cancels a child's seat; the first on the waiting list gets it."""
    booking = bookings.get_booking(user, booking_id)
    if booking.kind != "guardian":
        raise not_found("预约")  # a class trip is the teacher's to cancel
    try:
        bookings.cancel(actor=user, booking=booking, reason="家长在家长主页取消")
    except APIError as refusal:
        db.session.rollback()
        flash(refusal.message, "error")
        return redirect(home_url(user))
    flash(f"已取消预约：{booking.activity.title}。", "info")
    return redirect(home_url(user))


@bp.route("/reviews/<int:review_id>/appeal", methods=["POST"])
@page("student", "guardian")
def appeal(user, review_id: int):
    """申诉: the pupil or a parent appeals a rejection once, within 7 days, with a reason."""
    reason = (request.form.get("reason") or "").strip()
    if not reason:
        flash("请写明申诉理由。", "error")
        return redirect(home_url(user))
    try:
        reviews.appeal(user=user, review_id=review_id, reason=reason[:500])
    except APIError as refusal:
        db.session.rollback()
        if refusal.status == 404:
            raise
        flash(refusal.message, "error")
        return redirect(home_url(user))
    flash("申诉已提交，学校管理员会尽快处理。", "info")
    return redirect(home_url(user))
