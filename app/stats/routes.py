"""Bureau statistics (SPEC §8): credit aggregates and the venue activity index, json/xlsx/csv."""

from __future__ import annotations

from flask import jsonify
from flask_smorest import Blueprint

from app.auth.scope import current_user, roles_required
from app.common import error_responses, file_responses
from app.credits.rules import local_date, school_year_of
from app.db import utcnow
from app.stats import export, service
from app.stats.schemas import CreditStatsArgs, CreditStatsSchema, VenueStatsArgs, VenueStatsSchema

blp = Blueprint("stats", __name__, url_prefix="/api/v1/stats", description="教育局统计（不含学生身份）Bureau statistics")


def _school_year(args: dict) -> str:
    return args.get("school_year") or school_year_of(local_date(utcnow()))


@blp.route("/credits", methods=["GET"])
@roles_required(*service.OFFICER_ROLES)
@blp.arguments(CreditStatsArgs, location="query")
@blp.response(200, CreditStatsSchema)
@file_responses(blp, export.XLSX_MIME, "text/csv")
@error_responses(blp, 404)
def credit_stats(args):
    """Credits by district, school, grade, activity kind, venue kind or month (one or two), with
    small-cell suppression; ?format=xlsx|csv for a spreadsheet."""
    result = service.credit_stats(
        user=current_user(), school_year=_school_year(args), group_by=args["group_by"],
        district_id=args.get("district_id"), school_id=args.get("school_id"), grade=args.get("grade"),
        as_tuples=args["format"] != "json",  # a spreadsheet needs no dict per row (a city is thousands)
    )
    if args["format"] != "json":
        return export.file_response(result, args["format"], venues=False)
    return jsonify(result)  # already in wire format: no second pass through the schema (a city is thousands of rows)


@blp.route("/venues", methods=["GET"])
@roles_required(*service.OFFICER_ROLES)
@blp.arguments(VenueStatsArgs, location="query")
@blp.response(200, VenueStatsSchema)
@file_responses(blp, export.XLSX_MIME, "text/csv")
@error_responses(blp, 404)
def venue_stats(args):
    """The venue activity index (科普活动指数): per venue, check-ins, pupils, schools and districts
    reached, credits; ?group_by=month splits by month; ?format=xlsx|csv for a spreadsheet."""
    result = service.venue_stats(
        user=current_user(), school_year=_school_year(args), group_by=args.get("group_by"),
        district_id=args.get("district_id"), school_id=args.get("school_id"), as_tuples=args["format"] != "json",
    )
    if args["format"] != "json":
        return export.file_response(result, args["format"], venues=True)
    return jsonify(result)
