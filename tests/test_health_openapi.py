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
