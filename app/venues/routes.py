"""Venues and activities (CRUD)."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.audit.service import record_read
from app.auth.scope import (
    current_user,
    get_managed_activity,
    get_managed_venue,
    get_student,
    managed_venue_filter,
    roles_required,
)
from app.common import PageArgs, error_responses, file_responses, page_schema, paginate
from app.credits import ledger
from app.db import utcnow
from app.errors import not_found
from app.extensions import db
from app.venues import codes, service
from app.venues.models import Activity, Venue
from app.venues.schemas import (
    ActivityListArgs,
    ActivitySchema,
    CodeArgs,
    PassSchema,
    VenueCodeSchema,
    VenueSchema,
    VenueUpdateSchema,
)

blp = Blueprint("venues", __name__, url_prefix="/api/v1", description="场馆与科普活动 Venues and activities")

ANY_STAFF = ("admin", "city_officer", "district_officer", "school_admin", "teacher", "venue_staff")


@blp.route("/venues")
class Venues(MethodView):
    @roles_required(*ANY_STAFF)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_schema(VenueSchema))
    def get(self, args):
        """Venues (the registry is public within the service)."""
        return paginate(select(Venue).order_by(Venue.id), args)

    @roles_required("admin", "city_officer")
    @blp.arguments(VenueSchema)
    @blp.response(201, VenueSchema)
    def post(self, body):
        """Register a venue (city officer or admin)."""
        return service.create_venue(**body)


@blp.route("/venues/<int:venue_id>")
class VenueItem(MethodView):
    @roles_required(*ANY_STAFF)
    @blp.response(200, VenueSchema)
    def get(self, venue_id):
        """One venue."""
        venue = db.session.get(Venue, venue_id)
        if venue is None:
            raise not_found("场馆")
        return venue

    @roles_required("admin", "city_officer", "venue_staff")
    @blp.arguments(VenueUpdateSchema)
    @blp.response(200, VenueSchema)
    def patch(self, body, venue_id):
        """Change a venue the caller manages."""
        return service.update_venue(get_managed_venue(current_user(), venue_id), **body)


@blp.route("/activities")
class Activities(MethodView):
    @roles_required(*ANY_STAFF, "student", "guardian")
    @blp.arguments(ActivityListArgs, location="query")
    @blp.response(200, page_schema(ActivitySchema))
    def get(self, args):
        """Activities, optionally of one venue and within a time range; venue staff see their own."""
        user = current_user()
        query = select(Activity).order_by(Activity.starts_at, Activity.id)
        if user.role == "venue_staff":
            query = query.join(Venue).where(managed_venue_filter(user))
        if "venue_id" in args:
            query = query.where(Activity.venue_id == args["venue_id"])
        if "starts_after" in args:
            query = query.where(Activity.ends_at >= args["starts_after"])
        if "starts_before" in args:
            query = query.where(Activity.starts_at <= args["starts_before"])
        return paginate(query, args)

    @roles_required("admin", "city_officer", "venue_staff")
    @blp.arguments(ActivitySchema)
    @blp.response(201, ActivitySchema)
    @error_responses(blp, 404)
    def post(self, body):
        """Create an activity at a venue the caller manages."""
        venue = get_managed_venue(current_user(), body.pop("venue_id"))
        return service.create_activity(venue=venue, **body)


@blp.route("/activities/<int:activity_id>")
@roles_required(*ANY_STAFF, "student", "guardian")
@blp.response(200, ActivitySchema)
def get_activity(activity_id):
    """One activity."""
    activity = db.session.get(Activity, activity_id)
    if activity is None:
        raise not_found("科普活动")
    return activity




# --- venue codes and student passes -------------------------------------------------------------


@blp.route("/activities/<int:activity_id>/code", methods=["GET"])
@roles_required("admin", "city_officer", "venue_staff")
@blp.arguments(CodeArgs, location="query")
@blp.response(200, VenueCodeSchema)
def activity_code(args, activity_id):
    """The rotating venue code to display now: {token, url, expires_at} (valid ≤ 60 s)."""
    activity = get_managed_activity(current_user(), activity_id)
    return codes.venue_code(activity.id, args["direction"], utcnow())


def _qr_response(data: bytes, mimetype: str) -> Response:
    response = Response(data, mimetype=mimetype)
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.route("/activities/<int:activity_id>/code.png", methods=["GET"])
@roles_required("admin", "city_officer", "venue_staff")
@blp.arguments(CodeArgs, location="query")
@file_responses(blp, "image/png")
def activity_code_png(args, activity_id):
    """The current venue code as a PNG QR image of its URL."""
    activity = get_managed_activity(current_user(), activity_id)
    return _qr_response(codes.qr_png(codes.venue_code(activity.id, args["direction"], utcnow()).url), "image/png")


@blp.route("/activities/<int:activity_id>/code.svg", methods=["GET"])
@roles_required("admin", "city_officer", "venue_staff")
@blp.arguments(CodeArgs, location="query")
@file_responses(blp, "image/svg+xml")
def activity_code_svg(args, activity_id):
    """The current venue code as an SVG QR image of its URL."""
    activity = get_managed_activity(current_user(), activity_id)
    return _qr_response(codes.qr_svg(codes.venue_code(activity.id, args["direction"], utcnow()).url), "image/svg+xml")


PASS_READERS = ("student", "guardian", "teacher", "school_admin")


@blp.route("/students/<int:student_id>/pass")
class StudentPass(MethodView):
    @roles_required(*PASS_READERS)
    @blp.response(200, PassSchema)
    def get(self, student_id):
        """The student's pass (学生码) for venue staff to scan: {token, version}."""
        user = current_user()
        student = get_student(user, student_id)
        record_read(user, student, "pass")
        return {"token": codes.student_pass(student.id, student.pass_version), "version": student.pass_version}

    @roles_required(*PASS_READERS)
    @blp.response(201, PassSchema)
    def post(self, student_id):
        """Reissue the pass (a lost card): every older pass is revoked."""
        student = get_student(current_user(), student_id)
        ledger.lock_student(student.id)
        student.pass_version += 1
        db.session.commit()
        return {"token": codes.student_pass(student.id, student.pass_version), "version": student.pass_version}


@blp.route("/students/<int:student_id>/pass.png", methods=["GET"])
@roles_required(*PASS_READERS)
@file_responses(blp, "image/png")
def student_pass_png(student_id):
    """The student's pass as a PNG QR image (print it for pupils without a phone)."""
    user = current_user()
    student = get_student(user, student_id)
    record_read(user, student, "pass_png")
    return _qr_response(codes.qr_png(codes.student_pass(student.id, student.pass_version)), "image/png")
