"""One error envelope for every failure (SPEC §9, ARCHITECTURE "one error envelope"):
{"error": {"code", "message", "details"}} with the right status, and never a stack trace.

Covered: unknown route 404; wrong method 405 (with Allow); malformed JSON 400 malformed_json;
wrong types 422 with details.fields; a JSON body that is not an object; oversized body 413 (JSON
and multipart upload); a database IntegrityError answered 409 through the real route and handler
(the race between a uniqueness check and the insert); an unexpected exception answered 500
internal_error without any trace of the exception; messages are Chinese.
"""

from __future__ import annotations

import io

import pytest
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from tests import factories as f
from tests.conftest import TestConfig


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and any("\u4e00" <= ch <= "\u9fff" for ch in error["message"])
    assert isinstance(error["details"], dict)
    return error


@pytest.mark.parametrize("url", ["/api/v1/no-such-thing", "/no-such-page", "/api/v1/students/not-a-number"])
def test_unknown_route_is_404_envelope(client, url):
    _assert_error(client.get(url), 404, "not_found")


def test_wrong_method_is_405_envelope(client):
    response = client.delete("/api/v1/auth/login")
    _assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
    _assert_error(client.put("/healthz"), 405, "method_not_allowed")


@pytest.mark.parametrize("body", ['{"username": "a", "password": ', "not json at all", "{'single': 'quotes'}"])
def test_malformed_json_is_400(client, body):
    response = client.post("/api/v1/auth/login", data=body, content_type="application/json")
    _assert_error(response, 400, "malformed_json")


def test_wrong_types_are_422_with_field_messages(client):
    admin = f.user("admin")
    response = client.post("/api/v1/districts", json={"name": 123, "code": ["x"]}, headers=f.bearer(admin))
    fields = _assert_error(response, 422, "validation_error")["details"]["fields"]
    assert set(fields) == {"name", "code"}
    assert all(isinstance(messages, list) and messages for messages in fields.values())


def test_unknown_fields_are_422(client):
    admin = f.user("admin")
    response = client.post("/api/v1/districts", json={"name": "区", "code": "X1", "mayor": "me"},
                           headers=f.bearer(admin))
    assert "mayor" in _assert_error(response, 422, "validation_error")["details"]["fields"]


def test_json_that_is_not_an_object_is_422(client):
    admin = f.user("admin")
    response = client.post("/api/v1/districts", json=[1, 2, 3], headers=f.bearer(admin))
    assert _assert_error(response, 422, "validation_error")["details"]["fields"]


def test_oversized_body_is_413(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 1024)
    admin = f.user("admin")
    big = {"name": "区" * 2000, "code": "BIG"}
    _assert_error(client.post("/api/v1/districts", json=big, headers=f.bearer(admin)), 413, "payload_too_large")
    school = f.school()
    upload = client.post(f"/api/v1/schools/{school.id}/students/import", headers=f.bearer(admin),
                         data={"file": (io.BytesIO(b"x" * 4096), "roster.csv")}, content_type="multipart/form-data")
    _assert_error(upload, 413, "payload_too_large")
    # a small body still passes under the same limit
    ok = client.post("/api/v1/districts", json={"name": "小区", "code": "SMALL"}, headers=f.bearer(admin))
    assert ok.status_code == 201


def test_integrity_error_from_the_database_is_409(client, db_session, monkeypatch):
    """Another request inserts the same district code between our check and our insert.

    The uniqueness pre-check is made to miss (as it would in that race); the database's unique
    constraint then raises IntegrityError on commit, which must answer 409 and roll back.
    """
    from app.orgs import service

    admin = f.user("admin")
    f.district(name="福田区", code="FT")
    db_session.commit()  # (releases the test's savepoint) so the handler's rollback keeps these rows
    real_scalar = db_session.scalar
    calls = []

    def racing_scalar(statement, *args, **kwargs):
        if "districts" in str(statement) and not calls:
            calls.append(statement)
            return None  # the rival's row is not visible yet
        return real_scalar(statement, *args, **kwargs)

    monkeypatch.setattr(service.db.session, "scalar", racing_scalar)
    response = client.post("/api/v1/districts", json={"name": "福田区", "code": "FT"}, headers=f.bearer(admin))
    error = _assert_error(response, 409, "conflict")
    assert calls, "the pre-check was not reached"
    assert "IntegrityError" not in response.get_data(as_text=True)
    assert "UNIQUE" not in response.get_data(as_text=True).upper()
    monkeypatch.undo()
    # the session is usable afterwards and the database holds one district FT
    listed = client.get("/api/v1/districts?per_page=500", headers=f.bearer(admin)).json
    assert [d["code"] for d in listed["items"]].count("FT") == 1
    assert error["details"] == {}


def test_integrity_error_handler_answers_409(app):
    handler = app.error_handler_spec[None][None][IntegrityError]
    with app.test_request_context():
        response = handler(IntegrityError("INSERT ...", {}, Exception("duplicate key")))
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "conflict"


@pytest.fixture
def exploding_app():
    """A fresh app with one extra route that fails unexpectedly."""
    from app import create_app

    class Quiet(TestConfig):
        TESTING = False  # as in production: exceptions are handled, not propagated
        PROPAGATE_EXCEPTIONS = False

    fresh = create_app(Quiet)

    @fresh.get("/boom")
    def boom():
        secret = "s3cr3t-connection-string"
        raise RuntimeError(f"database password is {secret}")

    yield fresh
    with fresh.app_context():
        db.engine.dispose()


def test_unexpected_error_is_500_without_trace(exploding_app):
    response = exploding_app.test_client().get("/boom")
    error = _assert_error(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "RuntimeError" not in text and "s3cr3t" not in text
    assert error["details"] == {}
