"""The authorization matrix (issue #8): every operation of the OpenAPI document × every caller
(anonymous and the eight roles) × an object in and out of the caller's scope, against the table of
expectations in tests/authz/table.py.

The table is cross-checked with the document the app serves: an operation without a row, or a row
without an operation, fails here by name, so a new route cannot slip through untested. The world
(tests/authz/world.py) is built once per module inside one transaction; every cell runs in a
savepoint of it that is rolled back, so cells see the same data whatever ran before them.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from app.extensions import db
from tests.authz import world as world_module
from tests.authz.table import ANY_ROLE, KIND_FIELD, ROWS, Expect, rows_by_key
from tests.authz.world import CALLERS, MISSING_ID, ROLES
from tests.conftest import rolled_back_session

TABLE = rows_by_key()
HTTP_METHODS = ("get", "put", "post", "patch", "delete")
# Routes under /api/ that are not operations: the document itself and its Swagger UI.
NOT_OPERATIONS = {"GET /api/v1/openapi.json", "GET /api/docs", "GET /api/docs/static/<path:filename>"}


def _cells():
    for key, row in TABLE.items():
        for caller in CALLERS:
            for case in row.cases:
                _, bug = row.expected(caller, case)
                marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
                yield pytest.param(key, caller, case, id=f"{key}|{caller}|{case}", marks=marks)


@pytest.fixture(scope="module")
def world(app):
    """The city of world.py, committed into one module-wide transaction that is rolled back at the end."""
    with app.app_context(), rolled_back_session() as (session, connection):
        built = world_module.build()
        session.remove()
        yield SimpleNamespace(data=built, connection=connection)


@pytest.fixture(autouse=True)
def db_session(app, world):
    """Overrides tests/conftest.py's: each cell runs in a savepoint of the world's transaction."""
    with app.app_context():
        savepoint = world.connection.begin_nested()
        try:
            yield db.session
        finally:
            db.session.remove()
            if savepoint.is_active:
                savepoint.rollback()


@pytest.fixture(scope="module")
def document(app) -> dict:
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def _operations(document: dict) -> dict[str, dict]:
    return {f"{method.upper()} {path}": operation for path, item in document["paths"].items()
            for method, operation in item.items() if method in HTTP_METHODS}


# --- the table against the document -----------------------------------------------------------------


def test_every_documented_operation_has_a_row(document):
    missing = sorted(set(_operations(document)) - {row.op for row in ROWS})
    assert not missing, "operations with no row in tests/authz/table.py: " + "; ".join(missing)


def test_every_row_is_a_documented_operation(document):
    unknown = sorted({row.op for row in ROWS} - set(_operations(document)))
    assert not unknown, "rows in tests/authz/table.py naming no documented operation: " + "; ".join(unknown)


def test_table_knows_every_role():
    """A new role joins the matrix denied everywhere; `every(...)` rows must then decide about it."""
    assert set(ANY_ROLE) == set(ROLES), f"roles of app/auth/models.py not in table.ANY_ROLE: {set(ROLES) ^ set(ANY_ROLE)}"


def test_every_api_route_is_documented(app, document):
    """A route registered outside flask-smorest would be missing from the document, and so from the matrix."""
    documented = set(_operations(document))
    undocumented = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/api/", "/.well-known/", "/verify/")):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if f"{method} {path}" not in documented and f"{method} {rule.rule}" not in NOT_OPERATIONS:
                undocumented.append(f"{method} {rule.rule}")
    assert not undocumented, "API routes missing from the OpenAPI document: " + "; ".join(undocumented)


# The document says which operations need no login (`security: []`); it must agree with the table.
# op → "bug: …" for an operation whose declaration is wrong (xfail, strict) — none known.
DOCUMENT_SECURITY_BUGS: dict[str, str] = {}


@pytest.mark.parametrize("op", [
    pytest.param(op, id=op, marks=[pytest.mark.xfail(strict=True, reason=DOCUMENT_SECURITY_BUGS[op])]
                 if op in DOCUMENT_SECURITY_BUGS else [])
    for op in sorted({row.op for row in ROWS})
])
def test_document_declares_public_operations(document, op):
    public_rows = {row.public for row in ROWS if row.op == op}
    assert len(public_rows) == 1, f"{op}: rows disagree on whether it is public"
    operation = _operations(document).get(op)
    if operation is None:
        pytest.skip("not documented (test_every_row_is_a_documented_operation fails)")
    declared_public = operation.get("security") == []
    assert declared_public == public_rows.pop(), (
        f"{op}: the document declares it {'public' if declared_public else 'bearerAuth'}, the table does not")


# --- the matrix ---------------------------------------------------------------------------------------


def _describe(response) -> str:
    text = response.get_data(as_text=True) if response.mimetype and "json" in response.mimetype else response.mimetype
    return f"{response.status_code} {text[:400]}"


def _check(response, expect: Expect, o, where: str, own_pupil: int) -> None:
    assert response.status_code == expect.status, f"{where}: expected {expect}, got {_describe(response)}"
    if expect.error:
        assert response.get_json()["error"]["code"] == expect.error, f"{where}: {_describe(response)}"
    if expect.listed or expect.hidden:
        shown = {item[expect.key] for item in response.get_json()["items"]}
        kind = expect.listed or expect.hidden
        target = getattr(o, KIND_FIELD[kind])
        assert (target in shown) == bool(expect.listed), (
            f"{where}: {kind} {target} should {'' if expect.listed else 'not '}be listed; listed: {sorted(shown)}")
    if expect.own_checkin:
        checkin = response.get_json()["checkin"]
        assert checkin["student_id"] == own_pupil, f"{where}: opened a stay for pupil {checkin['student_id']}"
    if expect.rows:
        results = response.get_json()["results"]
        assert results, f"{where}: no result lines"
        for line in results:
            got = line["status"] if expect.rows == "accepted" else line.get("reason")
            assert got == expect.rows, f"{where}: expected every line {expect.rows}, got {line}"


def _send(client, row, o, w, caller):
    kwargs = row.request(o, w, caller)
    path = kwargs.pop("path")
    return client.open(path, headers=w.headers[caller], **kwargs)


@pytest.mark.parametrize(("key", "caller", "case"), list(_cells()))
def test_authorization(client, world, key, caller, case):
    row, w = TABLE[key], world.data
    expect, _ = row.expected(caller, case)
    o = w.objects(case)
    where = f"{key} as {caller} on the {case} {row.kind or 'request'}"
    response = _send(client, row, o, w, caller)
    _check(response, expect, o, where, w.objects("own").student)
    if expect.status == 404 and row.kind:
        # Out of scope must be indistinguishable from missing: the same request naming no object.
        attribute = KIND_FIELD[row.kind]
        missing = SimpleNamespace(**{**vars(o), attribute: "0" * 16 if row.kind == "credential" else MISSING_ID})
        absent = _send(client, row, missing, w, caller)
        assert (response.status_code, response.get_json()) == (absent.status_code, absent.get_json()), (
            f"{where}: out of scope {_describe(response)} differs from missing {_describe(absent)}")
