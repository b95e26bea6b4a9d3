"""The heart, end to end through HTTP: venue code → entry → exit → credit on the ledger."""

from __future__ import annotations

import uuid
from datetime import timedelta

from app.db import utcnow
from app.venues import codes
from tests import factories as f


def _code(activity, direction="entry", now=None):
    return codes.venue_code(activity.id, direction, now or utcnow()).token


def _scan(client, account, **body):
    body.setdefault("nonce", str(uuid.uuid4()))
    return client.post("/api/v1/checkins", json=body, headers=f.bearer(account))


def test_student_enters_and_leaves_and_earns_credit(client, db_session):
    pupil = f.student()
    account = f.student_user(pupil)
    act = f.activity(kind="lecture", starts_at=utcnow() - timedelta(hours=3))
    from app.checkins.models import Checkin

    entry = _scan(client, account, code=_code(act))
    assert entry.status_code == 201, entry.json
    assert entry.json["checkin"]["status"] == "open"
    assert entry.json["credit"] is None
    # pretend the lecture lasted 50 minutes
    stay = db_session.get(Checkin, entry.json["checkin"]["id"])
    stay.entered_at = utcnow() - timedelta(minutes=50)
    db_session.commit()
    leave = _scan(client, account, code=_code(act, "exit"))
    assert leave.status_code == 201, leave.json
    assert leave.json["checkin"]["status"] == "completed"
    assert leave.json["checkin"]["minutes"] == 50
    assert leave.json["credit"]["amount"] == "1.00"
    ledger = client.get(f"/api/v1/students/{pupil.id}/ledger", headers=f.bearer(account)).json
    assert ledger["total"] == 1 and ledger["items"][0]["amount"] == "1.00"
    verify = client.get(f"/api/v1/students/{pupil.id}/ledger/verify", headers=f.bearer(account)).json
    assert verify["ok"] is True and verify["entries"] == 1 and verify["first_bad_seq"] is None
