"""Rule versions: add (validated), simulate (writes nothing), recompute (idempotent), activate."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.checkins import service
from app.credits.ledger import verify_all
from app.credits.models import LedgerEntry
from app.credits.rules import load_default_rules
from app.venues import codes
from tests import factories as f

T0 = datetime(2026, 10, 13, 2, 0, tzinfo=UTC)
YEAR = "2026-2027"


def _stay(account, activity, at, minutes):
    for direction, when in (("entry", at), ("exit", at + timedelta(minutes=minutes))):
        token = codes.venue_code(activity.id, direction, when).token
        body = {"code": token, "nonce": str(uuid.uuid4())}
        req = service.ScanRequest(actor=account, source="self", code=token, nonce=body["nonce"], body=body)
        assert service.scan(req, now=when).status == 201


@pytest.fixture
def history(ctx):
    museum = f.venue(kind="science_museum", level="city")
    pupils = [f.student(f.school_class(grade=3)) for _ in range(3)]
    for i, pupil in enumerate(pupils):
        account = f.student_user(pupil)
        for day in range(i + 1):
            at = T0 + timedelta(days=day)
            act = f.activity(museum, kind="lecture", starts_at=at - timedelta(minutes=5), ends_at=at + timedelta(hours=3))
            _stay(account, act, at, 50)
    return pupils


def _doubled_document(version="sz-2026-test"):
    document = copy.deepcopy(load_default_rules().document)
    document["version"] = version
    document["activity"]["level_multipliers"]["city"] = "2.0"
    return document


def _ledger_count(db_session):
    return db_session.scalar(select(func.count()).select_from(LedgerEntry))


def test_a_bad_rule_document_gets_precise_errors(client, history):
    admin = f.user("admin")
    document = _doubled_document("broken")
    document["activity"]["level_multipliers"]["city"] = 2.0
    del document["caps"]["activity_per_day"]
    res = client.post("/api/v1/rules", headers=f.bearer(admin),
                      json={"version": "broken", "effective_from": "2026-09-01", "document": document})
    assert res.status_code == 422
    fields = res.json["error"]["details"]["fields"]
    assert "activity.level_multipliers.city" in fields and "caps.activity_per_day" in fields


def test_simulate_writes_nothing_and_recompute_is_idempotent(client, history, db_session):
    city = f.user("city_officer")
    body = {"version": "sz-2026-test", "effective_from": "2026-09-01", "document": _doubled_document()}
    assert client.post("/api/v1/rules", json=body, headers=f.bearer(city)).status_code == 201
    before = _ledger_count(db_session)
    sim = client.post(f"/api/v1/rules/sz-2026-test/simulate?school_year={YEAR}", headers=f.bearer(city))
    assert sim.status_code == 200
    assert sim.json["students_changed"] == 3
    assert sum(s["students_changed"] for s in sim.json["schools"]) == 3
    assert {s["credits_after"] for s in sim.json["schools"]} == {"2.00", "4.00", "6.00"}
    assert _ledger_count(db_session) == before  # simulate wrote nothing
    done = client.post(f"/api/v1/rules/sz-2026-test/recompute?school_year={YEAR}", headers=f.bearer(city))
    assert done.json["adjustments"] == 3
    again = client.post(f"/api/v1/rules/sz-2026-test/recompute?school_year={YEAR}", headers=f.bearer(city))
    assert again.json["adjustments"] == 0
    for pupil, expected in zip(history, ("2.00", "4.00", "6.00"), strict=True):
        got = db_session.scalar(select(func.sum(LedgerEntry.amount)).where(LedgerEntry.student_id == pupil.id))
        assert f"{got:.2f}" == expected
    assert all(r.ok for r in verify_all())
    resim = client.post(f"/api/v1/rules/sz-2026-test/simulate?school_year={YEAR}", headers=f.bearer(city))
    assert resim.json["students_changed"] == 0 or all(
        s["credits_before"] == s["credits_after"] for s in resim.json["schools"])


def test_activate_makes_new_scans_use_the_version(client, history, db_session):
    admin = f.user("admin")
    client.post("/api/v1/rules", json={"version": "sz-2026-test", "effective_from": "2026-09-01",
                                       "document": _doubled_document()}, headers=f.bearer(admin))
    assert client.post("/api/v1/rules/sz-2026-test/activate", headers=f.bearer(admin)).json["active"] is True
    versions = client.get("/api/v1/rules", headers=f.bearer(admin)).json["items"]
    assert [v["version"] for v in versions if v["active"]] == ["sz-2026-test"]
    one = client.get("/api/v1/rules/sz-2026-test", headers=f.bearer(admin)).json
    assert one["document"]["activity"]["level_multipliers"]["city"] == "2.0"
    pupil = f.student(f.school_class(grade=3))
    act = f.activity(f.venue(level="city"), kind="lecture", starts_at=T0 + timedelta(days=20),
                     ends_at=T0 + timedelta(days=20, hours=3))
    _stay(f.student_user(pupil), act, T0 + timedelta(days=20, minutes=5), 50)
    entry = db_session.scalar(select(LedgerEntry).where(LedgerEntry.student_id == pupil.id))
    assert entry.rule_version == "sz-2026-test" and f"{entry.amount:.2f}" == "2.00"


def test_only_the_bureau_manages_rules(client, history):
    teacher = f.user("teacher", school_=f.school())
    assert client.post("/api/v1/rules/sz-2025/activate", headers=f.bearer(teacher)).status_code == 403
    assert client.post(f"/api/v1/rules/nope/simulate?school_year={YEAR}",
                       headers=f.bearer(f.user("admin"))).status_code == 404
