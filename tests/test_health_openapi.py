"""Operational endpoints (SPEC §9): liveness, readiness with the database, the generated OpenAPI 3
document and the Swagger UI page.
"""

from __future__ import annotations

import json

import pytest


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_checks_the_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_readyz_reports_a_dead_database(client, monkeypatch):
    from app.extensions import db

    def broken(*args, **kwargs):
        raise ConnectionError("database is down")

    monkeypatch.setattr(db.session, "execute", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["database"] == "down"


@pytest.fixture
def openapi(client) -> dict:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return json.loads(response.get_data(as_text=True))


def test_openapi_document(openapi):
    assert openapi["openapi"].startswith("3.")
    assert openapi["info"]["title"] and openapi["info"]["version"] == "v1"
    for path in ("/api/v1/auth/login", "/api/v1/checkins", "/api/v1/students/{student_id}/ledger",
                 "/api/v1/schools/{school_id}/students/import", "/api/v1/students/{student_id}/guardian-invites"):
        assert path in openapi["paths"], path
    assert "post" in openapi["paths"]["/api/v1/auth/login"]
    assert "get" in openapi["paths"]["/api/v1/students/{student_id}/ledger"]


def test_openapi_declares_bearer_auth_and_hides_secrets(openapi):
    assert openapi["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    login = openapi["components"]["schemas"]["Login"]
    assert login["properties"]["password"].get("writeOnly") is True


def test_swagger_ui(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "swagger" in page.lower() and "openapi.json" in page


# --- every answer documented ------------------------------------------------------------------------

METHODS = ("get", "put", "post", "patch", "delete", "head", "options")


def _operations(openapi: dict):
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def _resolve(openapi: dict, node: dict) -> dict:
    """Follow a local `$ref` (#/components/…) to what it names."""
    while "$ref" in node:
        target = openapi
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def test_every_2xx_json_answer_documents_its_body(openapi):
    """A 2xx answer (but 204) is JSON with a body schema, unless it declares a non-JSON type (a PDF,
    an image, a workbook, a page …): without a schema the fuzzing in tests/fuzz cannot check it."""
    undocumented = []
    for label, operation in _operations(openapi):
        for status, response in operation["responses"].items():
            if not status.startswith("2") or status == "204":
                continue
            content = _resolve(openapi, response).get("content") or {}
            if not content:
                undocumented.append(f"{label} {status}: no content")
            for media_type, body in content.items():
                if _is_json(media_type) and not body.get("schema"):
                    undocumented.append(f"{label} {status} {media_type}: no schema")
    assert not undocumented, "2xx answers without a body schema:\n" + "\n".join(undocumented)


def test_every_operation_declares_503_in_the_error_envelope(openapi):
    """Any operation can answer 503 (the database went away, no active rule set …), in the envelope."""
    error = {"$ref": "#/components/schemas/Error"}
    missing = []
    for label, operation in _operations(openapi):
        response = operation["responses"].get("503")
        body = _resolve(openapi, response).get("content", {}).get("application/json") if response else None
        if body is None or body.get("schema") != error:
            missing.append(label)
    assert not missing, "operations without a 503 in the error envelope:\n" + "\n".join(missing)
