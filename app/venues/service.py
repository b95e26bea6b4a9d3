"""Venues and activities: the business rules."""

from __future__ import annotations

from app.credits.rules import activity_min_minutes
from app.credits.service import active_rules
from app.errors import field_error
from app.extensions import db
from app.orgs.models import District
from app.venues.models import Activity, Venue


def create_venue(**fields) -> Venue:
    """A new venue in an existing district."""
    if db.session.get(District, fields["district_id"]) is None:
        raise field_error("district_id", "区不存在。")
    venue = Venue(**fields)
    db.session.add(venue)
    db.session.commit()
    return venue


def update_venue(venue: Venue, **fields) -> Venue:
    for name, value in fields.items():
        setattr(venue, name, value)
    db.session.commit()
    return venue


def create_activity(*, venue: Venue, kind: str, title: str, starts_at, ends_at, min_minutes=None,
                    capacity=None, grades=None, theme=None) -> Activity:
    """A new activity; min_minutes defaults to the active rule set's value for its kind."""
    activity = Activity(
        venue_id=venue.id,
        kind=kind,
        title=title,
        theme=theme,
        starts_at=starts_at,
        ends_at=ends_at,
        min_minutes=min_minutes or activity_min_minutes(active_rules(), kind),
        capacity=capacity,
        grades=sorted(set(grades)) if grades else list(range(1, 10)),
    )
    db.session.add(activity)
    db.session.commit()
    return activity
