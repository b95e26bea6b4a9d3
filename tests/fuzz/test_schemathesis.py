"""Fuzz every operation of the OpenAPI document (/api/v1/openapi.json) with schemathesis, as each role.

For each role (and anonymously) a small school world is built, and every operation receives a few
requests that fit the schema and a few that do not, with that role's bearer token. Every answer must
be documented: no 5xx, a declared status code, a declared content type, a body that validates against
the declared schema (tests/fuzz/harness.py says how). Examples are derandomized, so a run is
reproducible; a failure lists every distinct problem with a curl command to replay it.

The bench (bench/fuzz.sh) runs the same harness with thousands of examples.
"""

from __future__ import annotations

import os

import pytest

from tests.fuzz import harness

# Examples per operation, per generation mode (positive, negative), per role: ~2,500 requests in all,
# well under two minutes on SQLite on two cores. FUZZ_EXAMPLES raises it for a deeper local run.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2"))


@pytest.fixture(scope="module")
def api_schema(app):
    return harness.load_schema(app)


@pytest.mark.parametrize("role", harness.ROLES)
def test_every_operation_answers_as_documented(app, api_schema, role):
    tally = harness.Tally()
    harness.fuzz_role(app, api_schema, role, max_examples=EXAMPLES, tally=tally)
    # Every operation of the document was called, so a silent no-op cannot pass.
    assert set(tally.by_operation) == {operation.label for operation in harness.operations(api_schema)}
    assert not tally.findings, f"{len(tally.findings)} problem(s) as {role}:\n\n{tally.report()}"


def _teapot():
    from app.errors import APIError

    raise APIError(418, "teapot", "我是茶壶。")


def _crash():
    raise RuntimeError("boom")


@pytest.mark.parametrize(("jwks", "expected"), [
    (_teapot, {"status_code_conformance"}),                       # an undeclared status
    (_crash, {"not_a_server_error", "status_code_conformance"}),  # a 500
    (lambda: ["not", "a", "key", "set"], {"response_schema_conformance"}),  # a body off its schema
], ids=["undeclared-status", "server-error", "body-off-schema"])
def test_the_checks_catch_what_they_should(app, api_schema, monkeypatch, jwks, expected):
    """The harness is not a test that cannot fail: break one public operation and it says how."""
    from app.transcripts import keys

    monkeypatch.setattr(keys, "jwks", jwks)
    tally = harness.Tally()
    harness.fuzz_role(app, api_schema, "anonymous", max_examples=1, tally=tally,
                      select=lambda operation: operation.path == "/.well-known/jwks.json")
    assert tally.examples >= 1
    assert {finding.check for finding in tally.findings.values()} == expected
