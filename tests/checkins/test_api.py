"""The scan endpoints through HTTP: codes and passes, modes, batch uploads, group trips, transcript."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import pytest
from PIL import Image

from app.checkins.models import Checkin
from app.db import utcnow
from app.venues import codes
from tests import factories as f


@pytest.fixture
def city(ctx):
    klass = f.school_class(grade=5)
    pupils = [f.student(klass) for _ in range(3)]
    museum = f.venue(kind="science_museum", level="provincial")
    act = f.activity(museum, kind="lecture", starts_at=utcnow() - timedelta(hours=2),
                     ends_at=utcnow() + timedelta(hours=4))
    return {
        "class": klass,
        "pupils": pupils,
        "student": f.student_user(pupils[0]),
        "parent": f.user("guardian", children=pupils[:2]),
        "teacher": f.user("teacher", school_=klass and pupils[0].school, classes=[klass]),
        "staff": f.user("venue_staff", venues=[museum]),
        "venue": museum,
        "activity": act,
    }


def post(client, account, url, body, **headers):
    return client.post(url, json=body, headers={**f.bearer(account), **headers})


def test_venue_code_endpoints(client, city):
    staff, act = city["staff"], city["activity"]
    got = client.get(f"/api/v1/activities/{act.id}/code?direction=exit", headers=f.bearer(staff))
    assert got.status_code == 200
    assert got.json["url"] == f"https://ledger.example.test/s/{got.json['token']}"
    assert codes.verify_venue_code(got.json["token"], utcnow()) == (act.id, "exit")
    png = client.get(f"/api/v1/activities/{act.id}/code.png", headers=f.bearer(staff))
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert Image.open(io.BytesIO(png.data)).size[0] > 100
    svg = client.get(f"/api/v1/activities/{act.id}/code.svg", headers=f.bearer(staff))
    assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    other_staff = f.user("venue_staff", venues=[f.venue()])
    assert client.get(f"/api/v1/activities/{act.id}/code", headers=f.bearer(other_staff)).status_code == 404
    assert client.get(f"/api/v1/activities/{act.id}/code", headers=f.bearer(city["student"])).status_code == 403


def test_pass_endpoints_and_reissue_revokes(client, city):
    pupil = city["pupils"][0]
    first = client.get(f"/api/v1/students/{pupil.id}/pass", headers=f.bearer(city["parent"])).json
    assert first["version"] == 1
    png = client.get(f"/api/v1/students/{pupil.id}/pass.png", headers=f.bearer(city["teacher"]))
    assert png.status_code == 200 and png.mimetype == "image/png"
    again = post(client, city["student"], f"/api/v1/students/{pupil.id}/pass", None)
    assert again.status_code == 201 and again.json["version"] == 2
    old = post(client, city["staff"], "/api/v1/checkins",
               {"student_pass": first["token"], "activity_id": city["activity"].id, "direction": "entry"})
    assert old.status_code == 422 and old.json["error"]["code"] == "pass_revoked", old.json
    new = post(client, city["staff"], "/api/v1/checkins",
               {"student_pass": again.json["token"], "activity_id": city["activity"].id, "direction": "entry"})
    assert new.status_code == 201 and new.json["checkin"]["source"] == "staff"
    stranger = f.user("guardian")
    assert client.get(f"/api/v1/students/{pupil.id}/pass", headers=f.bearer(stranger)).status_code == 404


def test_guardian_checks_in_two_children_with_one_code(client, city):
    token = codes.venue_code(city["activity"].id, "entry", utcnow()).token
    for child in city["pupils"][:2]:
        res = post(client, city["parent"], "/api/v1/checkins", {"code": token, "student_id": child.id},
                   **{"X-Device-Id": "family-phone"})
        assert res.status_code == 201, res.json
        assert res.json["checkin"]["source"] == "guardian"
    res = post(client, city["parent"], "/api/v1/checkins", {"code": token, "student_id": city["pupils"][2].id})
    assert res.status_code == 422 and res.json["error"]["code"] == "not_guardian"
    assert res.json["error"]["message"]


def test_mode_fields_are_required(client, city):
    res = post(client, city["parent"], "/api/v1/checkins", {"code": "x"})
    assert res.status_code == 422 and "student_id" in res.json["error"]["details"]["fields"]
    res = post(client, city["staff"], "/api/v1/checkins", {"student_pass": "x"})
    assert res.status_code == 422 and {"activity_id", "direction"} <= set(res.json["error"]["details"]["fields"])
    res = post(client, city["student"], "/api/v1/checkins", {"code": "x", "direction": "sideways"})
    assert res.status_code == 422
    assert post(client, city["teacher"], "/api/v1/checkins", {"code": "x"}).status_code == 403


def test_replay_over_http(client, city):
    body = {"code": codes.venue_code(city["activity"].id, "entry", utcnow()).token, "nonce": str(uuid.uuid4())}
    first = post(client, city["student"], "/api/v1/checkins", body)
    again = post(client, city["student"], "/api/v1/checkins", body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["replayed"] is True and again.json["checkin"] == first.json["checkin"]
    clash = post(client, city["student"], "/api/v1/checkins", {**body, "scanned_at": utcnow().isoformat()})
    assert clash.status_code == 409 and clash.json["error"]["code"] == "nonce_reused"


def test_batch_upload_in_order_and_replay_changes_nothing(client, city, db_session):
    act = city["activity"]
    start = utcnow() - timedelta(minutes=100)
    scans = []
    for pupil in city["pupils"]:
        token = codes.student_pass(pupil.id, pupil.pass_version)
        scans.append({"student_pass": token, "activity_id": act.id, "direction": "entry",
                      "scanned_at": start.isoformat(), "nonce": str(uuid.uuid4())})
        scans.append({"student_pass": token, "activity_id": act.id, "direction": "exit",
                      "scanned_at": (start + timedelta(minutes=50)).isoformat(), "nonce": str(uuid.uuid4())})
    scans.append({"student_pass": "garbage", "activity_id": act.id, "direction": "entry", "nonce": str(uuid.uuid4())})
    scans.append({"direction": "entry", "nonce": "no-pass"})
    res = post(client, city["staff"], "/api/v1/checkins/batch", {"scans": scans})
    assert res.status_code == 200
    results = res.json["results"]
    assert [r["nonce"] for r in results] == [s["nonce"] for s in scans]
    assert [r["status"] for r in results] == ["accepted"] * 6 + ["refused", "refused"]
    assert results[1]["credit"]["amount"] == "1.20"  # provincial lecture: 1.0 × 1.2
    assert results[6]["reason"] == "code_invalid" and results[7]["reason"] == "validation_error"
    before = db_session.query(Checkin).count()
    replay = post(client, city["staff"], "/api/v1/checkins/batch", {"scans": scans}).json["results"]
    assert [r["status"] for r in replay[:6]] == ["replayed"] * 6
    assert db_session.query(Checkin).count() == before


def test_batch_limit(client, city):
    res = post(client, city["staff"], "/api/v1/checkins/batch", {"scans": [{}] * 501})
    assert res.status_code == 422


def test_group_checkin_for_a_class_trip(client, city):
    act = city["activity"]
    ids = [p.id for p in city["pupils"]]
    outsider = f.student()
    res = post(client, city["teacher"], f"/api/v1/activities/{act.id}/group-checkins",
               {"student_ids": ids + [outsider.id], "direction": "entry",
                "scanned_at": (utcnow() - timedelta(minutes=60)).isoformat()})
    assert res.status_code == 200
    statuses = [(r["student_id"], r["status"]) for r in res.json["results"]]
    assert statuses == [(i, "accepted") for i in ids] + [(outsider.id, "refused")]
    out = post(client, city["teacher"], f"/api/v1/activities/{act.id}/group-checkins",
               {"student_ids": ids, "direction": "exit"})
    assert all(r["status"] == "accepted" and r["credit"]["amount"] == "1.20" for r in out.json["results"])
    assert all(not r["checkin"]["flags"] for r in out.json["results"])


def test_history_and_transcript(client, city):
    act = city["activity"]
    pupil = city["pupils"][0]
    post(client, city["teacher"], f"/api/v1/activities/{act.id}/group-checkins",
         {"student_ids": [pupil.id], "direction": "entry", "scanned_at": (utcnow() - timedelta(minutes=50)).isoformat()})
    post(client, city["teacher"], f"/api/v1/activities/{act.id}/group-checkins",
         {"student_ids": [pupil.id], "direction": "exit"})
    history = client.get(f"/api/v1/students/{pupil.id}/checkins", headers=f.bearer(city["parent"])).json
    assert history["total"] == 1 and history["items"][0]["status_label"] == "已完成"
    from app.credits.rules import local_date, school_year_of

    year = school_year_of(local_date(utcnow()))
    transcript = client.get(f"/api/v1/students/{pupil.id}/transcript?school_year={year}",
                            headers=f.bearer(city["student"])).json
    assert transcript["total"] == "1.20" and transcript["required"] == "8.00" and transcript["met"] is False
    assert transcript["by_kind"] == {"lecture": "1.20"}
    assert sum(float(v) for v in transcript["by_term"].values()) == pytest.approx(1.2)
    assert len(transcript["entries"]) == 1 and transcript["entries"][0]["explanation"]["summary"]
    assert client.get(f"/api/v1/students/{pupil.id}/transcript?school_year=2025",
                      headers=f.bearer(city["student"])).status_code == 422
    for outsider in (f.user("guardian"), city["staff"], f.user("teacher", school_=pupil.school)):
        res = client.get(f"/api/v1/students/{pupil.id}/transcript", headers=f.bearer(outsider))
        assert res.status_code in (403, 404)


def test_group_checkin_retry_with_a_nonce_is_a_replay(client, city, db_session):
    act = city["activity"]
    body = {"student_ids": [p.id for p in city["pupils"]], "direction": "entry", "nonce": "trip-2026-11-22",
            "scanned_at": (utcnow() - timedelta(minutes=30)).isoformat()}
    url = f"/api/v1/activities/{act.id}/group-checkins"
    first = post(client, city["teacher"], url, body).json["results"]
    again = post(client, city["teacher"], url, body).json["results"]
    assert [r["status"] for r in first] == ["accepted"] * 3 and [r["status"] for r in again] == ["replayed"] * 3
    assert [r["checkin"]["id"] for r in again] == [r["checkin"]["id"] for r in first]
    assert db_session.query(Checkin).count() == 3
