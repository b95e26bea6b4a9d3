"""Shared helpers for the matching tests: credits on a pupil's ledger, scans, times."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from app.checkins import service as scans
from app.credits import ledger
from app.credits.service import active_rules
from app.db import utcnow
from app.venues import codes


def days(n: float) -> timedelta:
    return timedelta(days=n)


def soon(hours_from_now: float = 24, length_hours: float = 2):
    """(starts_at, ends_at) of a session `hours_from_now` ahead."""
    start = utcnow().replace(microsecond=0) + timedelta(hours=hours_from_now)
    return start, start + timedelta(hours=length_hours)


def credit(pupil, kind: str, amount: str, competition: str | None = None, venue=None):
    """A credit of `kind` on the pupil's ledger this school year (as a stay or an award would write);
    with `venue`, a credited stay there (it counts toward the 3-stays-per-venue-per-term cap)."""
    source = "claim" if competition else ("checkin" if venue else "manual")
    return ledger.append(
        student_id=pupil.id, kind="credit", amount=Decimal(amount), source=source,
        occurred_at=utcnow(), rule_version=active_rules().version, explanation={"summary": "test"},
        activity_kind=None if competition else kind, competition=competition,
        venue_id=venue.id if venue else None,
    )


def staff_entry(staff, pupil, activity, at=None):
    """A venue staff scan of the pupil's pass at the activity's entrance."""
    at = at or utcnow()
    token = codes.student_pass(pupil.id, pupil.pass_version)
    body = {"student_pass": token, "activity_id": activity.id, "direction": "entry", "nonce": str(uuid.uuid4())}
    req = scans.ScanRequest(actor=staff, source="staff", student_pass=token, activity_id=activity.id,
                            direction="entry", scanned_at=at, nonce=body["nonce"], body=body)
    return scans.scan(req, now=at)
