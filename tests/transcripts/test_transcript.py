"""The transcript JSON: the fast path says exactly what the dict assembly says, cached or not."""

from __future__ import annotations

import json
from datetime import timedelta

from app.credits.service import reverse_entry
from app.transcripts import service
from tests.transcripts.conftest import TERM2, YEAR, credited_stay, get


def test_json_route_equals_the_dict_assembly(app, client, school, db_session):
    ming = school["ming"]
    credited_stay(ming, school["lecture"], TERM2 + timedelta(days=3), 60)
    reverse_entry(credited_stay(ming, school["visit"], TERM2 + timedelta(days=4), 95), reason="重复签到",
                  actor_id=school["teacher"].id)
    db_session.commit()
    service.entries_cache.clear()
    url = f"/api/v1/students/{ming.id}/transcript?school_year={YEAR}"
    cold = get(client, school["teacher"], url)
    assert cold.status_code == 200 and cold.mimetype == "application/json"
    warm = get(client, school["teacher"], url)
    assert warm.data == cold.data
    with app.test_request_context():
        expected = service.signed_transcript(ming, YEAR, actor_id=None)
    body = json.loads(cold.data)
    assert body == json.loads(json.dumps(expected))  # every field, every entry, every explanation
    kinds = [e["kind"] for e in body["entries"]]
    assert kinds.count("reversal") == 1 and body["entries"][-1]["amount"] == "-1.50"
    assert body["entries"][0]["occurred_at"] == "2025-10-14T10:00:00+08:00"


def test_a_new_entry_is_never_hidden_by_the_cache(client, school):
    ming = school["ming"]
    url = f"/api/v1/students/{ming.id}/transcript?school_year={YEAR}"
    before = get(client, school["student"], url).json
    credited_stay(ming, school["lecture"], TERM2 + timedelta(days=5), 60)
    after = get(client, school["student"], url).json
    assert len(after["entries"]) == len(before["entries"]) + 1 and after["total"] == "8.30"
    assert after["met"] is True and after["credential"]["id"] != before["credential"]["id"]


def test_cache_can_be_turned_off(app, client, school, monkeypatch):
    monkeypatch.setitem(app.config, "TRANSCRIPT_CACHE_BYTES", 0)
    service.entries_cache.clear()
    url = f"/api/v1/students/{school['hua'].id}/transcript?school_year={YEAR}"
    assert get(client, school["teacher"], url).json["total"] == "1.00"
    assert len(service.entries_cache) == 0


def test_empty_year(client, school):
    res = get(client, school["student"], f"/api/v1/students/{school['ming'].id}/transcript?school_year=2019-2020")
    body = res.json
    assert (body["total"], body["entries"], body["met"]) == ("0.00", [], False)
    assert body["credential"]["jwt"]
