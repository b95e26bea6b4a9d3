"""Schemathesis fuzzing of the app's own OpenAPI document, one role at a time, in-process (WSGI).

Shared by the CI test (tests/fuzz/test_schemathesis.py, a few examples per operation) and the bench
(bench/fuzz.sh → bench/fuzz.py, thousands). For every role a small school world is built (a district,
a school, a class with pupils, a venue with an open and an upcoming activity, one account per role, a
completed stay on the ledger, a pending competition claim, a booking, a guardian invite and a
transcript credential); then every operation of the document is fuzzed with that role's bearer token,
with data that fits the schema (positive) and data that does not (negative). Generated ids, codes and
tokens are sometimes swapped for the world's real ones, so requests reach past the 404s and
`code_invalid`s into the service code.

The checks are exactly "no 5xx, and the answer is what the document says":

* `not_a_server_error` — no 5xx, whatever the input;
* `status_code_conformance` — the status is one the operation declares;
* `content_type_conformance` — the Content-Type is one declared for that status;
* `response_schema_conformance` — the body validates against the declared schema.

The answers the world is built with (a scan, a claim, a decision, a booking, a roster import that
changes nothing, a transcript …) must validate against their schemas too: some success paths are
reached only there, never by a random body.

Each operation runs inside a savepoint that is rolled back afterwards, so every operation meets the
same world (closing a term or deactivating a pupil does not starve the operations after it), and the
whole run inside one outer transaction that is rolled back at the end: nothing is left behind.
"""

from __future__ import annotations

import io
import logging
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import scoped_session, sessionmaker

ROLES = ("student", "guardian", "teacher", "venue_staff", "school_admin", "district_officer", "city_officer",
         "admin", "anonymous")
CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance)
SCHEMA_CHECKS = {check.__name__ for check in CHECKS[1:]}
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


# --- the world -------------------------------------------------------------------------------------


@dataclass
class World:
    """Everything a role's requests may point at: ids by parameter name, secrets, one token per role."""

    ids: dict[str, list] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, list[str]] = field(default_factory=dict)
    passes: dict[int, str] = field(default_factory=dict)


def build_world(app, schema=None) -> World:
    """Build the school world through factories and the real API (claims, scans, bookings, invites).

    Given the OpenAPI `schema`, every answer the world is built with must also validate against it:
    some success paths (a booking, a claim, a roster import) are reached here and never by a random body.
    """
    from app.auth.tokens import issue_tokens
    from app.db import utcnow
    from app.venues import codes
    from tests import factories as f

    district = f.district(name="福田区")
    school = f.school(district, name="福田实验学校", pilot=True, latitude=22.54, longitude=114.05)
    other_school = f.school(f.district(name="南山区"), name="南山外国语学校")
    klass = f.school_class(school, grade=5, name="五(1)班")
    other_class = f.school_class(school, grade=8, name="八(2)班")
    ming, hua = f.student(klass, name="王小明"), f.student(klass, name="李华")
    older, outsider = f.student(other_class, name="陈静"), f.student(f.school_class(other_school), name="张伟")
    venue = f.venue(district, kind="science_museum", level="city", name="深圳科技馆", latitude=22.55, longitude=114.06)
    now = utcnow().replace(microsecond=0)
    open_now = f.activity(venue, kind="visit", starts_at=now - timedelta(hours=3), ends_at=now + timedelta(hours=5),
                          title="常设展厅参观", capacity=200)
    upcoming = f.activity(venue, kind="lecture", starts_at=now + timedelta(days=2),
                          ends_at=now + timedelta(days=2, hours=2), title="火星探测科普讲座", capacity=40)
    accounts = {
        "student": f.student_user(ming),
        "guardian": f.user("guardian", children=[ming, hua]),
        "teacher": f.user("teacher", school_=school, classes=[klass]),
        "venue_staff": f.user("venue_staff", venues=[venue]),
        "school_admin": f.user("school_admin", school_=school),
        "district_officer": f.user("district_officer", district_=district),
        "city_officer": f.user("city_officer"),
        "admin": f.user("admin"),
    }
    tokens = {role: issue_tokens(account) for role, account in accounts.items()}
    world = World(tokens={role: pair["access_token"] for role, pair in tokens.items()})
    client = app.test_client()

    def call(role, method, url, **kwargs):
        response = client.open(url, method=method, headers={"Authorization": f"Bearer {world.tokens[role]}"},
                               **kwargs)
        assert response.status_code < 300, (method, url, response.status_code, response.get_data(as_text=True))
        if schema is not None:
            operation = schema.find_operation_by_path(method, urlsplit(url).path)
            assert operation is not None, (method, url, "not in the OpenAPI document")
            operation.validate_response(response)  # raises the schemathesis failure, naming the field
        return response.get_json(silent=True)

    # A completed stay on the ledger: two staff scans uploaded from an offline device.
    ming_pass = codes.student_pass(ming.id, ming.pass_version)
    for direction, at in (("entry", now - timedelta(minutes=100)), ("exit", now - timedelta(minutes=5))):
        call("venue_staff", "POST", "/api/v1/checkins",
             json={"student_pass": ming_pass, "activity_id": open_now.id, "direction": direction,
                   "scanned_at": at.isoformat(), "nonce": str(uuid.uuid4())})
    claim = call("student", "POST", f"/api/v1/students/{ming.id}/claims", content_type="multipart/form-data",
                 data={"competition": "深圳市青少年科技创新大赛", "level": "city", "award": "first",
                       "work_title": "智能垃圾分类机器人", "date": (now - timedelta(days=3)).date().isoformat(),
                       "evidence": (io.BytesIO(PNG), "证书.png")})
    # A second claim, rejected by the teacher: something to appeal.
    rejected = call("guardian", "POST", f"/api/v1/students/{hua.id}/claims", content_type="multipart/form-data",
                    data={"competition": "福田区机器人比赛", "level": "district", "award": "second",
                          "work_title": "巡线小车", "date": (now - timedelta(days=2)).date().isoformat(),
                          "evidence": (io.BytesIO(PNG), "证书.png")})
    call("teacher", "POST", f"/api/v1/reviews/{rejected['review_id']}",
         json={"decision": "reject", "reason": "证书上的姓名看不清，请重新上传。"})
    booking = call("guardian", "POST", f"/api/v1/activities/{upcoming.id}/bookings", json={"student_id": hua.id})
    invite = call("school_admin", "POST", f"/api/v1/students/{older.id}/guardian-invites")
    # A roster that restates a pupil (unchanged) beside a row without a name (skipped): the import's
    # answer, errors included, without changing the world.
    roster = (f"学号,姓名,年级,班级\n{ming.student_number},{ming.name},{klass.grade},{klass.name}\n"
              f"X1,,{klass.grade},{klass.name}\n")
    call("school_admin", "POST", f"/api/v1/schools/{school.id}/students/import?partial=true",
         data=roster.encode(), content_type="text/csv")
    transcript = call("student", "GET", f"/api/v1/students/{ming.id}/transcript")
    credential = transcript["credential"]
    from app.credits.rules import local_date, school_year_of

    school_year = school_year_of(local_date(now))
    rule_document = call("city_officer", "GET", "/api/v1/rules/sz-2025")["document"]
    world.ids = {
        "student_id": [ming.id, hua.id, older.id, outsider.id],
        "school_id": [school.id, other_school.id],
        "class_id": [klass.id, other_class.id],
        "district_id": [district.id],
        "venue_id": [venue.id],
        "activity_id": [open_now.id, upcoming.id],
        "review_id": [claim["review_id"], rejected["review_id"]],
        "claim_id": [claim["id"], rejected["id"]],
        "booking_id": [booking["id"]],
        "actor_id": [accounts["teacher"].id],
        "version": ["sz-2025"],
        "public_id": [credential["id"]],
        "ref": [credential["id"], credential["jwt"]],
        "school_year": [school_year],
        "term": [1, 2],
        "student_ids": [[ming.id, hua.id]],
    }
    world.secrets = {
        "invite_code": [invite["code"]],
        "refresh_token": [pair["refresh_token"] for pair in tokens.values()][:2],
        "credential": [credential["jwt"]],
        "username": [accounts["student"].username, accounts["teacher"].username],
        "password": [f.PASSWORD],
        # Values a random string would almost never hit: statistics dimensions, a valid rule document.
        "group_by": ["district", "school,grade", "activity_kind", "venue_kind,month"],
        "document": [rule_document],
    }
    world.passes = {ming.id: ming_pass, hua.id: codes.student_pass(hua.id, hua.pass_version)}
    return world


def _live_secrets(world: World) -> dict[str, Callable[[], list]]:
    """Values that must be made at call time: venue codes live 60 s, so they are signed when sent."""
    from app.db import utcnow
    from app.venues import codes

    def venue_codes():
        now = utcnow()
        return [codes.venue_code(a, d, now).token for a in world.ids["activity_id"] for d in ("entry", "exit")]

    return {
        "code": lambda: venue_codes() + world.secrets["invite_code"],
        "student_pass": lambda: list(world.passes.values()),
        **{name: (lambda values=values: values) for name, values in world.secrets.items()},
    }


# --- anchoring generated values to the world ------------------------------------------------------


def _anchor(container: dict | None, known: dict[str, Callable[[], list]], pick: Callable[[list], object]) -> None:
    """Replace some values whose names the world knows (ids, codes, tokens) by real ones."""
    if not isinstance(container, dict):
        return
    for name in list(container):
        if name in known:
            choice = pick([*known[name](), None])  # real values first: the simplest draw is a real one
            if choice is not None:
                container[name] = choice


# --- bookkeeping -----------------------------------------------------------------------------------


@dataclass
class Finding:
    check: str
    operation: str
    role: str
    status: int
    title: str
    message: str
    curl: str


@dataclass
class Tally:
    """What a run saw: examples sent, statuses, and the distinct failures (first example kept)."""

    examples: int = 0
    statuses: Counter = field(default_factory=Counter)
    server_errors: int = 0
    schema_violations: int = 0
    findings: dict[tuple, Finding] = field(default_factory=dict)
    by_role: Counter = field(default_factory=Counter)
    by_operation: dict[str, Counter] = field(default_factory=dict)

    def record(self, role: str, operation: str, status: int, failures: list[Failure], curl: str,
               traceback: str = "") -> None:
        self.examples += 1
        self.by_role[role] += 1
        self.statuses[status] += 1
        self.by_operation.setdefault(operation, Counter())[status] += 1
        names = {self._check_name(failure) for failure in failures}
        if "not_a_server_error" in names:
            self.server_errors += 1
        if names & SCHEMA_CHECKS:
            self.schema_violations += 1
        for failure in failures:
            check = self._check_name(failure)
            key = (check, operation, status, failure.title)
            if key not in self.findings:
                message = failure.message + (f"\n{traceback}" if check == "not_a_server_error" else "")
                self.findings[key] = Finding(check, operation, role, status, failure.title, message, curl)

    @staticmethod
    def _check_name(failure: Failure) -> str:
        from schemathesis.core.failures import ServerError
        from schemathesis.openapi.checks import (
            JsonSchemaError,
            MalformedMediaType,
            MissingContentType,
            UndefinedContentType,
            UndefinedStatusCode,
        )

        if isinstance(failure, ServerError):
            return "not_a_server_error"
        if isinstance(failure, UndefinedStatusCode):
            return "status_code_conformance"
        if isinstance(failure, MissingContentType | UndefinedContentType | MalformedMediaType):
            return "content_type_conformance"
        if isinstance(failure, JsonSchemaError):
            return "response_schema_conformance"
        return type(failure).__name__

    def unreached(self) -> list[str]:
        """Operations that never answered 2xx (to see where the world needs more)."""
        return sorted(op for op, statuses in self.by_operation.items() if not any(200 <= s < 300 for s in statuses))

    def report(self) -> str:
        lines = []
        for finding in self.findings.values():
            lines.append(f"[{finding.check}] {finding.operation} as {finding.role} → {finding.status}: "
                         f"{finding.title}\n{finding.message}\n    {finding.curl}")
        return "\n\n".join(lines)


# --- running ---------------------------------------------------------------------------------------


class _ErrorLog(logging.Handler):
    """Keeps the tail of the traceback app/errors.py logs for a 500, to name the failing line."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record):
        if record.exc_info:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip().splitlines()
            self.lines[:] = ["    " + line for line in text[-8:]]

    def clear(self):
        self.lines.clear()

    def __iter__(self):
        return iter(self.lines)


_errors = _ErrorLog()


def _listen_to_errors() -> None:
    logger = logging.getLogger("app.errors")
    logger.disabled = False  # alembic's fileConfig (the migrations) disables the loggers that exist then
    if _errors not in logger.handlers:
        logger.addHandler(_errors)


def load_schema(app):
    """The app's own OpenAPI document, loaded through the app (in-process WSGI calls)."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    # The Authorization header is ours (one real token per role), not a generated one.
    schema.config.generation.update(with_security_parameters=False)
    return schema


def operations(schema) -> list:
    return [result.ok() for result in schema.get_all_operations()]


@contextmanager
def rolled_back(app) -> Iterator[Connection]:
    """One outer transaction for the whole run, rolled back at the end (the test suite's own, when the
    `db_session` fixture already opened one; else a new one, as that fixture does)."""
    from flask.globals import app_ctx

    from app.extensions import db

    bind = db.session.get_bind()
    if isinstance(bind, Connection):
        yield bind
        return
    connection = db.engine.connect()
    outer = connection.begin()
    original = db.session
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    db.session = scoped_session(factory, scopefunc=lambda: id(app_ctx._get_current_object()))
    try:
        yield connection
    finally:
        db.session.remove()
        db.session = original
        outer.rollback()
        connection.close()


def fuzz_role(app, schema, role: str, *, max_examples: int, tally: Tally,
              select: Callable[[object], bool] = lambda operation: True) -> None:
    """Fuzz every (selected) operation as `role`, positive then negative, each in its own savepoint."""
    from app.extensions import db

    _listen_to_errors()
    with rolled_back(app) as connection:
        world = build_world(app, schema)
        db.session.commit()
        known = {name: (lambda values=values: values) for name, values in world.ids.items()}
        known.update(_live_secrets(world))
        headers = {} if role == "anonymous" else {"Authorization": f"Bearer {world.tokens[role]}"}
        for operation in operations(schema):
            if not select(operation):
                continue
            for mode in MODES:
                savepoint = connection.begin_nested()
                try:
                    _fuzz(operation, mode, headers, known, role, max_examples, tally)
                finally:
                    db.session.remove()
                    savepoint.rollback()


# Real values that only make sense for one operation (elsewhere an existing username is just a 409).
_ONLY_FOR = {"username": "/api/v1/auth/login", "password": "/api/v1/auth/login"}


def _fuzz(operation, mode, headers, known, role, max_examples, tally) -> None:
    strategy = operation.as_strategy(generation_mode=mode)
    known = {name: values for name, values in known.items() if _ONLY_FOR.get(name, operation.path) == operation.path}

    @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy, data=st.data())
    def run(case, data):
        if mode == GenerationMode.POSITIVE:
            # Sometimes a real id/code/token instead of the generated one, so requests get past 404.
            def pick(options):
                return data.draw(st.sampled_from(options))

            _anchor(case.path_parameters, known, pick)
            _anchor(case.query, known, pick)
            _anchor(case.body, known, pick)
        _errors.clear()
        response = case.call(headers=headers)
        failures: list[Failure] = []
        try:
            case.validate_response(response, checks=list(CHECKS), headers=headers)
        except FailureGroup as group:
            failures = list(group.exceptions)
        curl = case.as_curl_command(headers=headers)
        tally.record(role, operation.label, response.status_code, failures, curl, traceback="\n".join(_errors))

    try:
        run()
    except Unsatisfiable:
        # Negative mode for an operation with nothing to get wrong (no parameters, no body).
        if mode == GenerationMode.POSITIVE:
            raise
