"""Directory (public), recommendations, bookings and talent discovery (SPEC §12)."""

from __future__ import annotations

from flask import jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.audit.service import record_read, record_reads
from app.auth.scope import (
    current_user,
    get_class,
    get_managed_activity,
    get_managed_venue,
    get_school,
    get_student,
    roles_required,
)
from app.common import SHANGHAI, documents, error_responses, page_schema, paginate
from app.credits.rules import local_date, school_year_of
from app.db import utcnow
from app.errors import APIError, not_found
from app.extensions import db
from app.matching import bookings, directory, recommend, talent
from app.matching.models import Booking
from app.matching.schemas import (
    ActivityBookingsSchema,
    BookingCancelledSchema,
    BookingCreatedSchema,
    BookingCreateSchema,
    BookingListArgs,
    BookingSchema,
    CancelArgs,
    DirectoryActivitiesSchema,
    DirectoryActivityArgs,
    DirectoryDistrictsSchema,
    DirectoryVenueArgs,
    DirectoryVenuesSchema,
    NoShowArgs,
    NoShowsSchema,
    RecommendationArgs,
    RecommendationsSchema,
    TalentArgs,
    TalentSchema,
    VenueDayArgs,
    VenueDaySchema,
)
from app.venues.models import Activity

blp = Blueprint("matching", __name__, url_prefix="/api/v1",
                description="科普资源名录、推荐、预约与拔尖人才发现 Directory, recommendations, bookings, talent")

PUBLIC = {"security": []}
BOOKERS = ("teacher", "school_admin", "guardian")
VENUE_SIDE = ("venue_staff", "city_officer")


def _public(payload):
    response = jsonify(payload)
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


# --- the public directory -------------------------------------------------------------------------


@blp.route("/directory/activities", methods=["GET"])
@blp.doc(**PUBLIC)
@blp.arguments(DirectoryActivityArgs, location="query")
@blp.response(200)
@documents(blp, 200, DirectoryActivitiesSchema)
def directory_activities(args):
    """Upcoming activities with seats left (public, no login): ?from=&to=&district_id=&grade=&theme=&kind=."""
    return _public(directory.list_activities(**args))


@blp.route("/directory/venues", methods=["GET"])
@blp.doc(**PUBLIC)
@blp.arguments(DirectoryVenueArgs, location="query")
@blp.response(200)
@documents(blp, 200, DirectoryVenuesSchema)
def directory_venues(args):
    """Active venues with kind, level, district, coordinates and upcoming themes (public, no login)."""
    return _public(directory.list_venues(**args))


@blp.route("/directory/districts", methods=["GET"])
@blp.doc(**PUBLIC)
@blp.response(200)
@documents(blp, 200, DirectoryDistrictsSchema)
def directory_districts():
    """Districts that have a venue, for the directory's filter (public, no login)."""
    return _public({"items": directory.districts_with_venues()})


# --- recommendations ------------------------------------------------------------------------------


@blp.route("/students/<int:student_id>/recommendations", methods=["GET"])
@roles_required("student", "guardian", "teacher", "school_admin")
@blp.arguments(RecommendationArgs, location="query")
@blp.response(200)
@documents(blp, 200, RecommendationsSchema)
def student_recommendations(args, student_id):
    """Upcoming activities ranked for the pupil, each with a one-line reason (the pupil, guardians, teachers)."""
    user = current_user()
    student = get_student(user, student_id)
    record_read(user, student, "recommendations")
    return recommend.recommendations(student, **args)


# --- bookings -------------------------------------------------------------------------------------


@blp.route("/activities/<int:activity_id>/bookings")
class ActivityBookings(MethodView):
    @roles_required(*BOOKERS)
    @blp.arguments(BookingCreateSchema)
    @blp.response(201)
    @documents(blp, 201, BookingCreatedSchema, "confirmed, or waitlisted (a guardian's booking of a full activity)")
    @error_responses(blp, 409)
    def post(self, body, activity_id):
        """Book: a teacher's class trip {"class_id", "seats"} or a guardian's seat for a child {"student_id"}.

        201 confirmed or waitlisted (a guardian's booking of a full activity); 422 `activity_full`,
        `not_enough_seats`, `not_eligible`, `booking_closed`; 409 `already_booked`.
        """
        user = current_user()
        activity = db.session.get(Activity, activity_id)
        if activity is None:
            raise not_found("科普活动")
        if "class_id" in body:
            if user.role not in ("teacher", "school_admin", "admin"):
                raise APIError(403, "forbidden", "只有老师可以为班级预约。")
            klass = get_class(user, body["class_id"])
            booking = bookings.book_class(actor=user, activity=activity, klass=klass, seats=body["seats"],
                                          note=body.get("note"))
        else:
            if user.role not in ("guardian", "admin"):
                raise APIError(403, "forbidden", "老师请按班级预约；为单个孩子预约请由家长操作。")
            student = get_student(user, body["student_id"])
            booking = bookings.book_student(actor=user, activity=activity, student=student,
                                            waitlist=body["waitlist"], note=body.get("note"))
        view = bookings.booking_view(booking, names=True)
        return jsonify({**view, "message": bookings.booking_message(booking, view)}), 201

    @roles_required(*VENUE_SIDE)
    @blp.response(200)
    @documents(blp, 200, ActivityBookingsSchema)
    def get(self, activity_id):
        """The activity's seats and bookings, for its venue (no pupil names)."""
        return bookings.activity_bookings(get_managed_activity(current_user(), activity_id))


@blp.route("/venues/<int:venue_id>/bookings", methods=["GET"])
@roles_required(*VENUE_SIDE)
@blp.arguments(VenueDayArgs, location="query")
@blp.response(200)
@documents(blp, 200, VenueDaySchema)
def venue_day_bookings(args, venue_id):
    """The venue's day list: every activity open that day, its seats and its bookings (no pupil names)."""
    venue = get_managed_venue(current_user(), venue_id)
    day = args.get("date") or utcnow().astimezone(SHANGHAI).date()
    return bookings.venue_day(venue, day)


@blp.route("/bookings", methods=["GET"])
@roles_required(*BOOKERS, "student", *VENUE_SIDE)
@blp.arguments(BookingListArgs, location="query")
@blp.response(200)
@documents(blp, 200, page_schema(BookingSchema))
def list_bookings(args):
    """Bookings the caller may see (a guardian: their children's; a teacher: their classes'), newest first."""
    user = current_user()
    query = select(Booking).where(bookings.booking_filter(user)).order_by(Booking.id.desc())
    for name in ("student_id", "class_id", "activity_id", "status"):
        if name in args:
            query = query.where(getattr(Booking, name) == args[name])
    result = paginate(query, args)
    result["items"] = bookings.booking_views(list(result["items"]), names=bookings.school_side(user))
    return result


@blp.route("/bookings/no-shows", methods=["GET"])
@roles_required("venue_staff", "district_officer", "city_officer")
@blp.arguments(NoShowArgs, location="query")
@blp.response(200)
@documents(blp, 200, NoShowsSchema)
def booking_no_shows(args):
    """No-shows per venue over ended activities: booked seats nobody came in on (never on a pupil's record)."""
    return {"items": bookings.no_shows(current_user(), **args)}


@blp.route("/bookings/<int:booking_id>")
class BookingItem(MethodView):
    @roles_required(*BOOKERS, "student", *VENUE_SIDE)
    @blp.response(200)
    @documents(blp, 200, BookingSchema)
    def get(self, booking_id):
        """One booking, with its place on the waiting list."""
        user = current_user()
        return bookings.booking_view(bookings.get_booking(user, booking_id), names=bookings.school_side(user))

    @roles_required(*BOOKERS, *VENUE_SIDE)
    @blp.arguments(CancelArgs, location="query")
    @blp.response(200)
    @documents(blp, 200, BookingCancelledSchema)
    def delete(self, args, booking_id):
        """Cancel a booking (until the activity ends); the waiting list moves up into the freed seats."""
        user = current_user()
        booking, promoted = bookings.cancel(actor=user, booking=bookings.get_booking(user, booking_id),
                                            reason=args.get("reason"))
        return {**bookings.booking_view(booking, names=bookings.school_side(user)),
                "promoted_booking_ids": [b.id for b in promoted]}


# --- talent discovery -----------------------------------------------------------------------------


@blp.route("/schools/<int:school_id>/talent", methods=["GET"])
@roles_required("school_admin")
@blp.arguments(TalentArgs, location="query")
@blp.response(200)
@documents(blp, 200, TalentSchema)
def school_talent(args, school_id):
    """Pupils whose year stands out (top 5 % in grade, provincial/national award, ≥ 4 kinds), with evidence.

    The school's own school admin only; every pupil listed is recorded in the audit log.
    """
    user = current_user()
    school = get_school(user, school_id)
    school_year = args.get("school_year") or school_year_of(local_date(utcnow()))
    result = talent.talent(school, school_year)
    record_reads(user, [item["student_id"] for item in result["items"]], "talent")
    response = jsonify(result)
    response.headers["Cache-Control"] = "no-store"
    return response
