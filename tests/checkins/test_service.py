"""The scan pipeline at service level, with a controlled clock: every SPEC §4.2 reason, stays,
no_exit, replays, and the credits a stay earns on the ledger."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import jwt
import pytest
from sqlalchemy import func, select

from app.checkins import service
from app.checkins.models import Checkin, Scan
from app.credits.ledger import verify_chain
from app.credits.models import LedgerEntry
from app.errors import APIError
from app.extensions import db
from app.venues import codes
from tests import factories as f

# A Tuesday in term 1 of 2026-2027, 10:00 in Shanghai.
T0 = datetime(2026, 11, 17, 2, 0, tzinfo=UTC)


def minutes(n):
    return timedelta(minutes=n)


def code(activity, direction="entry", at=T0):
    return codes.venue_code(activity.id, direction, at).token


def self_scan(account, activity, direction="entry", at=T0, nonce=None, **extra):
    body = {"code": code(activity, direction, at), "nonce": nonce or str(uuid.uuid4()), **extra}
    req = service.ScanRequest(actor=account, source="self", code=body["code"], nonce=body["nonce"], body=body)
    return service.scan(req, now=at)


def staff_scan(account, pupil, activity, direction="entry", at=T0, now=None, nonce=None, token=None):
    token = token or codes.student_pass(pupil.id, pupil.pass_version)
    body = {"student_pass": token, "activity_id": activity.id, "direction": direction,
            "scanned_at": at.isoformat(), "nonce": nonce or str(uuid.uuid4())}
    req = service.ScanRequest(actor=account, source="staff", student_pass=token, activity_id=activity.id,
                              direction=direction, scanned_at=at, nonce=body["nonce"], body=body)
    return service.scan(req, now=now or at)


@pytest.fixture
def world(ctx):
    """A pupil with an account, a city-level science museum, staff, and a day-long visit activity."""
    pupil = f.student(f.school_class(grade=5))
    museum = f.venue(kind="science_museum", level="city")
    day = f.activity(museum, kind="visit", starts_at=T0 - timedelta(hours=1), ends_at=T0 + timedelta(hours=7))
    return {
        "pupil": pupil,
        "account": f.student_user(pupil),
        "venue": museum,
        "activity": day,
        "staff": f.user("venue_staff", venues=[museum]),
    }


def reason(result):
    assert result.status == 422, result.body
    return result.body["error"]["code"]


def test_entry_then_exit_credits_the_stay(world):
    entry = self_scan(world["account"], world["activity"])
    assert entry.status == 201 and entry.body["checkin"]["status"] == "open"
    leave = self_scan(world["account"], world["activity"], "exit", at=T0 + minutes(75))
    assert leave.status == 201
    assert leave.body["checkin"]["minutes"] == 75
    assert leave.body["credit"]["amount"] == "1.00"  # 2 full half-hours × 0.5 × city 1.0
    entry_row = world["pupil"].id
    assert verify_chain(entry_row).ok


def test_short_stay_completes_with_zero_credit_on_the_record(world):
    self_scan(world["account"], world["activity"])
    leave = self_scan(world["account"], world["activity"], "exit", at=T0 + minutes(29))
    assert leave.status == 201 and leave.body["checkin"]["status"] == "completed"
    assert leave.body["credit"]["amount"] == "0.00"
    assert "30" in leave.body["credit"]["explanation"]["summary"]


@pytest.mark.parametrize("token", ["garbage", "", "a.b.c"])
def test_garbage_codes_are_invalid(world, token):
    body = {"code": token, "nonce": str(uuid.uuid4())}
    req = service.ScanRequest(actor=world["account"], source="self", code=token, nonce=body["nonce"], body=body)
    assert reason(service.scan(req, now=T0)) == "code_invalid"


def test_forged_altered_and_wrong_purpose_codes_are_invalid(world):
    act = world["activity"]
    forged = jwt.encode({"p": "v", "a": act.id, "d": "entry", "w": codes.window_of(T0)}, "not-the-key", "HS256")
    genuine = code(act)
    header, payload, signature = genuine.split(".")
    other = jwt.encode({"p": "v", "a": act.id + 1, "d": "entry", "w": codes.window_of(T0)}, "x", "HS256")
    altered = ".".join([header, other.split(".")[1], signature])
    a_pass = codes.student_pass(world["pupil"].id, 1)
    for token in (forged, altered, a_pass):
        body = {"code": token}
        req = service.ScanRequest(actor=world["account"], source="self", code=token, body=body)
        assert reason(service.scan(req, now=T0)) == "code_invalid"


def test_code_accepted_for_its_window_and_the_next_then_expired(world):
    token = code(world["activity"], at=T0)  # T0 starts a 30 s window

    def use(at, extra):
        body = {"code": token, "n": extra}
        return service.scan(service.ScanRequest(actor=world["account"], source="self", code=token, body=body), now=at)

    assert use(T0 + timedelta(seconds=59), 1).status == 201
    assert reason(use(T0 + timedelta(seconds=60), 2)) == "code_expired"
    assert reason(use(T0 + timedelta(seconds=600), 3)) == "code_expired"


def test_refused_scans_are_stored_with_their_reason(world):
    result = self_scan(world["account"], world["activity"], "exit")
    assert reason(result) == "not_checked_in"
    row = db.session.get(Scan, result.scan_id)
    assert row.successful is False and row.reason == "not_checked_in" and row.student_id == world["pupil"].id
    assert "签到" in result.body["error"]["message"]


def test_already_checked_in(world):
    self_scan(world["account"], world["activity"])
    assert reason(self_scan(world["account"], world["activity"], at=T0 + minutes(5))) == "already_checked_in"


def test_activity_not_open_before_start_and_after_end(world):
    act = f.activity(world["venue"], starts_at=T0 + timedelta(hours=2), ends_at=T0 + timedelta(hours=4))
    assert reason(self_scan(world["account"], act)) == "activity_not_open"
    assert reason(self_scan(world["account"], act, at=T0 + timedelta(hours=5))) == "activity_not_open"


def test_grade_eligibility(world):
    act = f.activity(world["venue"], grades=[7, 8, 9], starts_at=T0 - minutes(10))
    result = self_scan(world["account"], act)
    assert reason(result) == "not_eligible"
    assert "年级" in result.body["error"]["message"]


def test_inactive_student_is_refused(world):
    world["pupil"].active = False
    assert reason(self_scan(world["account"], world["activity"])) == "student_inactive"


def test_capacity_is_enforced_and_reentry_keeps_the_seat(world):
    act = f.activity(world["venue"], capacity=1, starts_at=T0 - minutes(10))
    other = f.student_user(f.student(f.school_class(grade=5)))
    assert self_scan(world["account"], act).status == 201
    assert reason(self_scan(other, act)) == "activity_full"
    assert self_scan(world["account"], act, "exit", at=T0 + minutes(40)).status == 201
    assert self_scan(world["account"], act, at=T0 + minutes(45)).status == 201  # back in, same seat


def test_guardian_needs_a_linked_child(world):
    sibling = f.student(f.school_class(grade=3))
    parent = f.user("guardian", children=[world["pupil"], sibling])
    stranger = f.student()
    for child in (world["pupil"], sibling):
        body = {"code": code(world["activity"]), "student_id": child.id}
        req = service.ScanRequest(actor=parent, source="guardian", code=body["code"], student_id=child.id, body=body)
        assert service.scan(req, now=T0).status == 201
    body = {"code": code(world["activity"]), "student_id": stranger.id}
    req = service.ScanRequest(actor=parent, source="guardian", code=body["code"], student_id=stranger.id, body=body)
    assert reason(service.scan(req, now=T0)) == "not_guardian"


def test_staff_scan_with_pass_and_revoked_pass(world):
    old = codes.student_pass(world["pupil"].id, 1)
    world["pupil"].pass_version = 2
    assert reason(staff_scan(world["staff"], world["pupil"], world["activity"], token=old)) == "pass_revoked"
    assert staff_scan(world["staff"], world["pupil"], world["activity"]).status == 201


def test_staff_cannot_scan_for_another_venues_activity(world):
    elsewhere = f.activity(starts_at=T0 - minutes(5))
    with pytest.raises(APIError) as err:
        staff_scan(world["staff"], world["pupil"], elsewhere)
    assert err.value.status == 404


def test_offline_staff_upload_window(world):
    noon = T0 + timedelta(hours=2)
    # a morning's scans uploaded at noon are accepted and keep their own times
    assert staff_scan(world["staff"], world["pupil"], world["activity"], at=T0, now=noon).status == 201
    leave = staff_scan(world["staff"], world["pupil"], world["activity"], "exit", at=T0 + minutes(60), now=noon)
    assert leave.body["checkin"]["minutes"] == 60
    other = f.student(f.school_class(grade=5))
    stale = staff_scan(world["staff"], other, world["activity"], at=T0, now=T0 + timedelta(hours=73))
    assert reason(stale) == "scanned_at_invalid"
    ahead = staff_scan(world["staff"], other, world["activity"], at=T0 + minutes(3), now=T0)
    assert reason(ahead) == "scanned_at_invalid"


def test_out_of_hours_offline_upload_is_refused(world):
    night = T0 + timedelta(hours=10)
    assert reason(staff_scan(world["staff"], world["pupil"], world["activity"], at=night,
                             now=night + minutes(5))) == "activity_not_open"


def test_forgotten_exit_becomes_no_exit_and_does_not_block_the_next_visit(world, db_session):
    self_scan(world["account"], world["activity"])
    next_day = T0 + timedelta(days=1)
    tomorrow = f.activity(world["venue"], starts_at=next_day - minutes(30), ends_at=next_day + timedelta(hours=6))
    assert self_scan(world["account"], tomorrow, at=next_day).status == 201
    stays = db_session.scalars(select(Checkin).where(Checkin.student_id == world["pupil"].id)
                               .order_by(Checkin.id)).all()
    assert [s.status for s in stays] == ["no_exit", "open"]
    credited = db_session.scalar(select(func.count()).select_from(LedgerEntry)
                                 .where(LedgerEntry.student_id == world["pupil"].id))
    assert credited == 0  # no credit for a stay without an exit


def test_staff_exit_within_72h_completes_a_no_exit_stay(world, db_session):
    self_scan(world["account"], world["activity"])
    service.expire_all(now=T0 + timedelta(days=1))
    stay = db_session.scalar(select(Checkin).where(Checkin.student_id == world["pupil"].id))
    assert stay.status == "no_exit"
    # the venue's own record says the pupil left at T0+90min; uploaded two days later
    leave = staff_scan(world["staff"], world["pupil"], world["activity"], "exit", at=T0 + minutes(90),
                       now=T0 + timedelta(days=2))
    assert leave.status == 201 and leave.body["checkin"]["status"] == "completed"
    assert leave.body["credit"]["amount"] == "1.50"


def test_exit_after_deadline_by_the_pupil_is_not_checked_in(world):
    self_scan(world["account"], world["activity"])
    late = world["activity"].ends_at + timedelta(hours=2)
    exit_code = code(world["activity"], "exit", late)
    body = {"code": exit_code}
    req = service.ScanRequest(actor=world["account"], source="self", code=exit_code, body=body)
    assert reason(service.scan(req, now=late)) == "activity_not_open"


def test_exit_within_grace_counts_until_the_end(world):
    act = f.activity(world["venue"], starts_at=T0 - minutes(10), ends_at=T0 + minutes(60))
    self_scan(world["account"], act)
    leave = self_scan(world["account"], act, "exit", at=T0 + minutes(80))
    assert leave.status == 201 and leave.body["checkin"]["minutes"] == 60


def test_nonce_replay_and_conflict(world, db_session):
    nonce = str(uuid.uuid4())
    token = code(world["activity"])
    body = {"code": token, "nonce": nonce}
    req = service.ScanRequest(actor=world["account"], source="self", code=token, nonce=nonce, body=body)
    first = service.scan(req, now=T0)
    again = service.scan(req, now=T0 + timedelta(seconds=5))
    assert first.status == 201 and again.status == 200 and again.body["replayed"] is True
    assert again.body["checkin"] == first.body["checkin"]
    changed = service.ScanRequest(actor=world["account"], source="self", code=token, nonce=nonce,
                                  body={**body, "scanned_at": "x"})
    with pytest.raises(APIError) as err:
        service.scan(changed, now=T0)
    assert err.value.status == 409
    assert db_session.scalar(select(func.count()).select_from(Scan).where(Scan.nonce == nonce)) == 1


def test_refusal_replays_as_refusal(world):
    nonce = str(uuid.uuid4())
    first = self_scan(world["account"], world["activity"], "exit", nonce=nonce)
    again = self_scan(world["account"], world["activity"], "exit", nonce=nonce)
    assert reason(first) == reason(again) == "not_checked_in"
    assert again.replayed and again.body["error"]["details"]["replayed"] is True


def test_daily_cap_across_stays(world):
    """Three national workshops in one day: 2.25 + 1.75 (capped at 4.00) + 0.00."""
    national = f.venue(kind="science_base", level="national")
    second = f.venue(kind="science_base", level="national")
    third = f.venue(kind="science_base", level="national")
    amounts = []
    start = T0
    for venue_ in (national, second, third):
        act = f.activity(venue_, kind="workshop", starts_at=start - minutes(5), ends_at=start + minutes(120))
        self_scan(world["account"], act, at=start)
        amounts.append(self_scan(world["account"], act, "exit", at=start + minutes(61)).body["credit"]["amount"])
        start += minutes(70)
    assert amounts == ["2.25", "1.75", "0.00"]


def test_fourth_credited_stay_at_a_venue_in_a_term_earns_nothing(world):
    amounts = []
    for day in range(4):
        at = T0 + timedelta(days=day)
        act = f.activity(world["venue"], kind="lecture", starts_at=at - minutes(5), ends_at=at + minutes(120))
        self_scan(world["account"], act, at=at)
        amounts.append(self_scan(world["account"], act, "exit", at=at + minutes(50)).body["credit"]["amount"])
    assert amounts == ["1.00", "1.00", "1.00", "0.00"]


def test_one_credit_per_stay_even_if_credited_twice(world, db_session):
    from sqlalchemy.exc import IntegrityError

    from app.credits.service import credit_stay

    self_scan(world["account"], world["activity"])
    self_scan(world["account"], world["activity"], "exit", at=T0 + minutes(40))
    stay = db_session.scalar(select(Checkin).where(Checkin.student_id == world["pupil"].id))
    with pytest.raises(IntegrityError), db_session.begin_nested():
        credit_stay(stay, actor_id=None)
    total = db_session.scalar(select(func.sum(LedgerEntry.amount)).where(LedgerEntry.student_id == stay.student_id))
    assert total == Decimal("0.50")
