"""Integrity checks on an entry scan (SPEC §4.3). A flag holds the stay for a teacher's review.

* shared device: one X-Device-Id checking in the third (or later) different student in self mode
  within the window — one phone collecting a class's check-ins is the classic fake. Guardian,
  staff and group scans are exempt: a parent's phone serves siblings, a venue scanner serves all.
* impossible travel: the student's previous scan was at another venue too far away for the time
  between the two (faster than max_kmh), when both venues have coordinates.

Thresholds come from the active rule set (`integrity` section), not from code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import distinct, func, select

from app.checkins.models import Checkin, Scan
from app.credits.rules import RuleSet
from app.extensions import db
from app.venues.models import Activity, Venue

FLAG_MESSAGES = {
    "shared_device": "同一设备在 {minutes} 分钟内为 {count} 名不同学生自助签到。",
    "impossible_travel": "与上一场馆相距 {km} 公里，仅隔 {gap} 分钟（约 {kmh} 公里/小时），不合常理。",
}
EARTH_RADIUS_KM = 6371.0


@dataclass(frozen=True)
class Flag:
    code: str
    message: str

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def entry_flags(*, rules: RuleSet, source: str, device_id: str | None, student_id: int, activity: Activity,
                when: datetime) -> list[Flag]:
    """The flags an entry scan raises (empty for a normal one)."""
    flags = []
    if source == "self" and device_id:
        flag = _shared_device(rules, device_id, student_id, when)
        if flag:
            flags.append(flag)
    flag = _impossible_travel(rules, student_id, activity.venue, when)
    if flag:
        flags.append(flag)
    return flags


def _shared_device(rules: RuleSet, device_id: str, student_id: int, when: datetime) -> Flag | None:
    window = timedelta(minutes=rules.shared_device_window_minutes)
    others = db.session.scalar(
        select(func.count(distinct(Scan.student_id))).where(
            Scan.device_id == device_id,
            Scan.source == "self",
            Scan.direction == "entry",
            Scan.successful.is_(True),
            Scan.scanned_at >= when - window,
            Scan.scanned_at <= when,
            Scan.student_id != student_id,
        )
    )
    count = (others or 0) + 1
    if count < rules.shared_device_students:
        return None
    message = FLAG_MESSAGES["shared_device"].format(minutes=rules.shared_device_window_minutes, count=count)
    return Flag("shared_device", message)


def _impossible_travel(rules: RuleSet, student_id: int, venue: Venue, when: datetime) -> Flag | None:
    if venue.latitude is None or venue.longitude is None:
        return None
    previous = db.session.execute(
        select(Checkin.venue_id, Checkin.entered_at, Checkin.exited_at, Venue.latitude, Venue.longitude)
        .join(Venue, Venue.id == Checkin.venue_id)
        .where(Checkin.student_id == student_id, Checkin.entered_at <= when, Checkin.venue_id != venue.id)
        .order_by(Checkin.entered_at.desc())
        .limit(1)
    ).first()
    if previous is None or previous.latitude is None or previous.longitude is None:
        return None
    last_seen = previous.exited_at if previous.exited_at and previous.exited_at <= when else previous.entered_at
    km = distance_km(previous.latitude, previous.longitude, venue.latitude, venue.longitude)
    hours = max((when - last_seen).total_seconds(), 1) / 3600
    kmh = km / hours
    if kmh <= float(rules.impossible_travel_max_kmh):
        return None
    message = FLAG_MESSAGES["impossible_travel"].format(
        km=f"{km:.1f}", gap=int(hours * 60), kmh=int(kmh)
    )
    return Flag("impossible_travel", message)
