"""Recommendations (适配优质科普资源): upcoming activities ranked for one pupil, each with its reason.

The order of SPEC §12, in this priority:

1. a kind the pupil still needs — first the kind the requirement names (grades 7–9: a workshop or
   research, 实验/工作坊 · 研学), then any kind the pupil has not done while kinds are missing;
2. credits toward the requirement: what the activity would earn for a typical stay under the active
   rules (its venue's level, the kind's base, the 3-stays-per-venue-per-term cap), counted only up
   to what is still missing — so once a pupil lacks 1.00, every activity worth ≥ 1.00 ties;
3. eligibility and seats are filters: an activity not open to the pupil's grade, a full one, one
   the pupil already booked or attended, is never recommended;
4. distance from the pupil's school, nearest first, when both have coordinates (unknown last);
5. date, soonest first.

Activities that would earn nothing (the venue cap reached this term) come last, saying so. Once the
requirement is met, kinds the pupil has not tried come first (breadth), then the same order. A
programme held in many sessions (the same title at the same venue) is recommended once, at its
best-placed session, with `more_sessions` saying how many others there are in the window.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from app.checkins.integrity import distance_km
from app.checkins.models import Checkin
from app.common import iso
from app.credits.rules import (
    ACTIVITY_KIND_LABELS,
    Stay,
    StayHistory,
    evaluate_stay,
    local_date,
    school_year_of,
    term_of,
)
from app.credits.service import active_rules, stay_history
from app.db import utcnow
from app.extensions import db
from app.matching import directory
from app.matching.bookings import LIVE, SEATED, holds_seat_for
from app.matching.models import Booking
from app.orgs.models import Student
from app.transcripts.service import transcript

MAX_CANDIDATES = 500
TIERS = {"required_kind": 0, "new_kind": 1, "credits": 2, "enrichment": 2, "venue_cap": 3}


def typical_minutes(rules, activity) -> int:
    """A typical stay: the activity's minimum, or as long as it takes to reach the kind's cap
    (a visit: 0.5 per 30 min up to 2.0 → 120 min), within the activity's hours."""
    rule = rules.kinds[activity.kind]
    want = activity.min_minutes
    if rule.per_minutes and rule.amount and rule.max:
        want = max(want, rule.per_minutes * math.ceil(rule.max / rule.amount))
    length = int((activity.ends_at - activity.starts_at).total_seconds() // 60)
    return max(activity.min_minutes, min(want, length))


def recommendations(student: Student, *, start: datetime | None = None, end: datetime | None = None,
                    limit: int = 10, now: datetime | None = None) -> dict:
    """Ranked upcoming activities for `student`, each with a one-line reason in Chinese."""
    now = now or utcnow()
    start, end = directory.window(start, end, now)
    school_year = school_year_of(local_date(now))
    record = transcript(student, school_year)
    progress = {key: record[key] for key in ("total", "required", "met", "kinds", "missing")}
    result = {"student_id": student.id, "school_year": school_year, "progress": progress,
              "from": iso(start), "to": iso(end), "items": []}
    if not student.active:
        return result
    query = directory.activities_query(start=start, end=end, grade=student.grade, available=True)
    candidates = directory.fetch(query.limit(MAX_CANDIDATES))
    taken = _already_there(student, [activity.id for activity, _ in candidates])
    rules = active_rules()
    missing = record["missing"]
    missing_credits = Decimal(missing["credits"])
    done_kinds = set(record["kinds"])
    school = student.school
    venue_stays: dict[tuple, int] = {}
    ranked = []
    for activity, view in candidates:
        if activity.id in taken:
            continue
        venue = activity.venue
        when = max(activity.starts_at, now)
        key = (venue.id, school_year_of(local_date(when)), term_of(when))
        if key not in venue_stays:
            venue_stays[key] = stay_history(student_id=student.id, venue_id=venue.id,
                                            occurred_at=when).venue_stays_this_term
        estimate = evaluate_stay(
            rules,
            Stay(activity_kind=activity.kind, venue_kind=venue.kind, venue_level=venue.level,
                 minutes=typical_minutes(rules, activity), min_minutes=activity.min_minutes),
            StayHistory(venue_stays_this_term=venue_stays[key]),
        ).amount
        toward = min(estimate, missing_credits)
        distance = None
        if None not in (school.latitude, school.longitude, venue.latitude, venue.longitude):
            distance = round(distance_km(school.latitude, school.longitude, venue.latitude, venue.longitude), 1)
        code, reason = _reason(activity.kind, missing, done_kinds, estimate, missing_credits, venue_stays[key],
                               view["theme"])
        if distance is not None:
            reason += "，就在学校附近" if distance < 0.1 else f"，距学校约 {distance} 公里"
        # once the requirement is met, a kind not yet tried (breadth) comes before more of the same
        novelty = 0 if code != "enrichment" or activity.kind not in done_kinds else 1
        ranked.append((
            (TIERS[code], -toward, novelty, distance if distance is not None else math.inf, activity.starts_at,
             activity.id),
            {**view, "reason": reason, "reason_code": code, "estimated_credits": f"{estimate:.2f}",
             "toward_requirement": f"{toward:.2f}", "distance_km": distance},
        ))
    ranked.sort(key=lambda pair: pair[0])
    result["items"] = _one_per_programme(ranked, limit)
    return result


def _one_per_programme(ranked: list, limit: int) -> list[dict]:
    """The best-placed session of each programme (same venue and title: a workshop held every day)
    stands for all of them, saying how many more sessions there are; ranked 1, 2, 3 …"""
    best: dict[tuple, dict] = {}
    for _, item in ranked:
        key = (item["venue"]["id"], item["title"])
        if key in best:
            best[key]["more_sessions"] += 1
        else:
            best[key] = {**item, "more_sessions": 0}
    items = list(best.values())[:limit]  # dicts keep the ranked order
    for n, item in enumerate(items, start=1):
        item["rank"] = n
    return items


def _reason(kind, missing, done_kinds, estimate, missing_credits, stays_at_venue, theme) -> tuple[str, str]:
    label = ACTIVITY_KIND_LABELS[kind]
    if estimate == 0:
        return "venue_cap", f"本学期在该场馆已计满 {stays_at_venue} 次，再去不计学分"
    if kind in missing["one_of"]:
        return "required_kind", f"还差一项{label}类活动"
    if missing["kinds"] > 0 and kind not in done_kinds:
        return "new_kind", f"还差 {missing['kinds']} 类活动，{label}是你还没参加过的类型"
    if missing_credits > 0:
        return "credits", f"可得约 {estimate:.2f} 学分，离年度要求还差 {missing_credits:.2f} 学分"
    if kind not in done_kinds:
        return "enrichment", f"已达到年度要求，还可以尝试{label}（约 {estimate:.2f} 学分）"
    return "enrichment", f"已达到年度要求，可以继续探索{theme or label}（约 {estimate:.2f} 学分）"


def _already_there(student: Student, activity_ids: list[int]) -> set[int]:
    """Activities the pupil already booked (or waits for), their class booked a trip to, or they are
    seated at: not recommended again (a parent would book a second seat)."""
    if not activity_ids:
        return set()
    booked = db.session.scalars(
        select(Booking.activity_id).where(holds_seat_for(student), Booking.status.in_(LIVE),
                                          Booking.activity_id.in_(activity_ids))
    )
    seated = db.session.scalars(
        select(Checkin.activity_id).where(Checkin.student_id == student.id, Checkin.status.in_(SEATED),
                                          Checkin.activity_id.in_(activity_ids))
    )
    return set(booked) | set(seated)

