"""The public directory of science resources (科普资源名录): venues and upcoming activities.

Public (no login), so only public fields cross: a venue's name, kind, level, district, address,
coordinates and themes; an activity's title, kind, theme, hours, grades, capacity and seats left.
Nothing about pupils — not who booked, not how many of which school, not a check-in.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import cast, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import contains_eager

from app.common import iso
from app.credits.rules import ACTIVITY_KIND_LABELS, LEVEL_LABELS, VENUE_KIND_LABELS
from app.db import utcnow
from app.errors import field_error
from app.extensions import db
from app.matching.bookings import booked_seats, seats_left, walk_ins
from app.orgs.models import District
from app.venues.models import Activity, Venue

DEFAULT_DAYS = 30
MAX_DAYS = 366
THEME_HORIZON = timedelta(days=90)


def window(start: datetime | None, end: datetime | None, now: datetime | None = None,
           default_days: int = DEFAULT_DAYS) -> tuple[datetime, datetime]:
    """The time range to list: from now (never the past: the directory shows what is still to come)
    to `end`, by default `default_days` later; at most a year."""
    now = now or utcnow()
    start = max(start or now, now)
    end = end or start + timedelta(days=default_days)
    if end - start > timedelta(days=MAX_DAYS):
        raise field_error("to", f"时间范围最长 {MAX_DAYS} 天。")
    return start, end


def grade_condition(grade: int):
    """SQL: the activity is open to `grade` (its `grades` JSON list contains it), per dialect."""
    if db.session.get_bind().dialect.name == "postgresql":
        return cast(Activity.grades, JSONB).contains([grade])
    values = func.json_each(Activity.grades).table_valued("value")
    return select(values.c.value).where(values.c.value == grade).exists()


def activities_query(*, start: datetime, end: datetime, district_id: int | None = None, grade: int | None = None,
                     theme: str | None = None, kind: str | None = None, venue_id: int | None = None,
                     available: bool = False):
    """Select (Activity, booked seats, walk-ins) of active venues overlapping [start, end), soonest first."""
    booked, walked = booked_seats(Activity.id), walk_ins(Activity.id)
    query = (
        select(Activity, booked, walked)
        .join(Venue, Venue.id == Activity.venue_id)
        .options(contains_eager(Activity.venue))
        .where(Venue.active.is_(True), Activity.ends_at > start, Activity.starts_at < end)
        .order_by(Activity.starts_at, Activity.id)
    )
    if district_id is not None:
        query = query.where(Venue.district_id == district_id)
    if venue_id is not None:
        query = query.where(Venue.id == venue_id)
    if kind:
        query = query.where(Activity.kind == kind)
    if theme:
        query = query.where(Activity.theme.contains(theme.strip(), autoescape=True))
    if grade is not None:
        query = query.where(grade_condition(grade))
    if available:
        query = query.where((Activity.capacity.is_(None)) | (Activity.capacity > booked + walked))
    return query


def district_names(ids) -> dict[int, str]:
    ids = set(ids)
    if not ids:
        return {}
    return dict(db.session.execute(select(District.id, District.name).where(District.id.in_(ids))).all())


def public_venue(venue: Venue, district_name: str | None) -> dict:
    return {
        "id": venue.id,
        "name": venue.name,
        "kind": venue.kind,
        "kind_label": VENUE_KIND_LABELS.get(venue.kind, venue.kind),
        "level": venue.level,
        "level_label": LEVEL_LABELS.get(venue.level, venue.level),
        "district_id": venue.district_id,
        "district_name": district_name,
        "address": venue.address,
        "latitude": venue.latitude,
        "longitude": venue.longitude,
    }


def public_activity(activity: Activity, booked: int, walked: int, district_name: str | None) -> dict:
    left = seats_left(activity.capacity, int(booked), int(walked))
    return {
        "id": activity.id,
        "title": activity.title,
        "kind": activity.kind,
        "kind_label": ACTIVITY_KIND_LABELS.get(activity.kind, activity.kind),
        "theme": activity.theme,
        "starts_at": iso(activity.starts_at),
        "ends_at": iso(activity.ends_at),
        "min_minutes": activity.min_minutes,
        "grades": list(activity.grades or range(1, 10)),
        "capacity": activity.capacity,
        "seats_left": left,
        "full": left == 0,
        "venue": public_venue(activity.venue, district_name),
    }


def fetch(query) -> list[tuple[Activity, dict]]:
    """Run an activities_query: each activity with its public view."""
    rows = db.session.execute(query).unique().all()
    names = district_names(a.venue.district_id for a, _, _ in rows)
    return [(a, public_activity(a, booked, walked, names.get(a.venue.district_id))) for a, booked, walked in rows]


def activity_rows(query) -> list[dict]:
    """Run an activities_query and shape every row as the public view."""
    return [view for _, view in fetch(query)]


def list_activities(*, page: int = 1, per_page: int = 50, **filters) -> dict:
    """Upcoming activities with seats left, paged: {"items", "page", "per_page", "total", "from", "to"}."""
    start, end = window(filters.pop("start", None), filters.pop("end", None))
    query = activities_query(start=start, end=end, **filters)
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    items = activity_rows(query.limit(per_page).offset((page - 1) * per_page))
    return {"items": items, "page": page, "per_page": per_page, "total": total, "from": iso(start), "to": iso(end)}


def list_venues(*, page: int = 1, per_page: int = 50, district_id: int | None = None, kind: str | None = None,
                level: str | None = None, now: datetime | None = None) -> dict:
    """Active venues, each with the themes and the number of its activities in the next 90 days."""
    now = now or utcnow()
    query = select(Venue).where(Venue.active.is_(True)).order_by(Venue.district_id, Venue.id)
    if district_id is not None:
        query = query.where(Venue.district_id == district_id)
    if kind:
        query = query.where(Venue.kind == kind)
    if level:
        query = query.where(Venue.level == level)
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    venues = db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all()
    upcoming = db.session.execute(
        select(Activity.venue_id, Activity.theme, func.count(Activity.id))
        .where(Activity.venue_id.in_([v.id for v in venues]), Activity.ends_at > now,
               Activity.starts_at < now + THEME_HORIZON)
        .group_by(Activity.venue_id, Activity.theme)
        .order_by(Activity.venue_id, Activity.theme)
    ).all()
    themes: dict[int, list[str]] = {}
    counts: dict[int, int] = {}
    for venue_id, theme, n in upcoming:
        counts[venue_id] = counts.get(venue_id, 0) + n
        if theme:
            themes.setdefault(venue_id, []).append(theme)
    names = district_names(v.district_id for v in venues)
    items = [
        {**public_venue(v, names.get(v.district_id)), "themes": themes.get(v.id, []),
         "upcoming_activities": counts.get(v.id, 0)}
        for v in venues
    ]
    return {"items": items, "page": page, "per_page": per_page, "total": total}


def districts_with_venues() -> list[dict]:
    """Districts that have an active venue, for the directory's filter (public)."""
    rows = db.session.execute(
        select(District.id, District.name)
        .where(District.id.in_(select(Venue.district_id).where(Venue.active.is_(True))))
        .order_by(District.id)
    ).all()
    return [{"id": i, "name": n} for i, n in rows]
