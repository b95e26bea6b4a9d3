"""The expectations of the authorization matrix: one row per OpenAPI operation (method + path).

How to read a row
-----------------
``Row("GET /api/v1/schools/{school_id}", kind="school", expect={...})`` says, for each caller
(``anonymous``; ``forged``, the admin's claims signed with a wrong key; the eight roles of
app/auth/models.py), what the operation answers when its scoped object is the caller's ``own``, a
``near`` one (one step outside the narrowest scope: another class of the same school, another
school or venue of the same district) or a ``far`` one (another district) — see
tests/authz/world.py for the objects. A value is

* one status for every case (``200``), or a tuple with one per case (``(200, N, N)``);
* ``L(kind)`` / ``H(kind)``: 200, and the case's object is listed / not listed in ``items`` (lists
  filter by scope instead of answering 404);
* ``ROWS_OK`` / ``ROWS_NOT_FOUND``: 200, and every line of ``results`` was accepted / refused as
  ``not_found`` (batch and group scans answer per line);
* ``refused(422, "not_guardian")``: that status with that error code; ``Expect(201, own_checkin=True)``:
  201, and the stay opened is the caller's own pupil's whatever the body named;
* ``Bug(expected, "bug: …")``: a known authorization bug; the cell is xfail(strict=True) until fixed.

Defaults, so a row only names who gets in: a role the row does not name gets **403** (deny by
default: a route that starts letting a role in fails here); ``anonymous`` gets **401**
``unauthorized`` and ``forged`` **401** ``token_invalid``; a ``public`` row gives everybody
(anonymous included) its ``everyone`` status. Every 401, 403 and 404 is also checked for its error
code, and every 404 is compared with the same request naming an id that does not exist: an
out-of-scope object must be indistinguishable from a missing one (SPEC §2).

A 422 in an "allowed" cell means the role and scope checks passed and validation answered (the
body is deliberately incomplete or refers to an object the caller may not use); the comment says so.

Adding a route: add its row here (test_matrix fails naming any documented operation without one,
and any row whose operation is not documented); name the roles that may call it and, when it takes
an object, its ``kind`` and the per-case answers.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace

from tests.authz.world import CALLERS, CASES, PNG

N = 404  # out of scope answers exactly like missing (SPEC §2)


@dataclass(frozen=True)
class Expect:
    status: int
    error: str | None = None      # the error envelope's code
    listed: str | None = None     # a kind whose case object must be in items[*][key]
    hidden: str | None = None     # a kind whose case object must not be in items[*][key]
    key: str = "id"
    rows: str | None = None       # "accepted" / "not_found": every results[*] line
    own_checkin: bool = False     # the stay opened is the caller's own pupil's, whatever the body named

    def __str__(self) -> str:
        extra = [f"error={self.error}"] if self.error else []
        extra += [f"lists {self.listed}"] if self.listed else []
        extra += [f"hides {self.hidden}"] if self.hidden else []
        extra += [f"rows {self.rows}"] if self.rows else []
        extra += ["own pupil's stay"] if self.own_checkin else []
        return f"{self.status}" + (f" ({', '.join(extra)})" if extra else "")


@dataclass(frozen=True)
class Bug:
    """A cell whose current answer is a genuine authorization bug: `expected` is what SPEC wants."""

    expected: int | Expect
    reason: str


def L(kind: str, key: str = "id") -> Expect:
    return Expect(200, listed=kind, key=key)


def H(kind: str, key: str = "id") -> Expect:
    return Expect(200, hidden=kind, key=key)


ROWS_OK = Expect(200, rows="accepted")
ROWS_NOT_FOUND = Expect(200, rows="not_found")


def refused(status: int, code: str) -> Expect:
    return Expect(status, error=code)


# The object a kind names in a case, as an attribute of the case's namespace (world.py).
KIND_FIELD = {
    "student": "student", "school": "school", "class": "klass", "district": "district", "venue": "venue",
    "activity": "activity", "review": "review", "rejected_review": "rejected_review", "claim": "claim",
    "booking": "booking", "credential": "credential", "user": "user", "audit": "audit",
}


def _standard(status: int) -> Expect:
    return Expect(status, error={401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(status))


Value = int | Expect | Bug | tuple
Builder = Callable[[SimpleNamespace, object, str], object]


@dataclass(frozen=True)
class Row:
    op: str                                   # "METHOD /path" exactly as in the OpenAPI document
    expect: Mapping[str, Value] = field(default_factory=dict)
    kind: str | None = None                   # the scoped object: cases own/near/far (district: own/far)
    variant: str = ""                         # when one operation is probed more than one way
    public: bool = False
    everyone: int | None = None               # a public row's answer for every caller
    params: Builder | None = None             # path parameters beyond the defaults
    query: Builder | dict | None = None
    json: Builder | dict | None = None
    form: Builder | None = None               # multipart fields (files as (bytes, filename))

    @property
    def key(self) -> str:
        return f"{self.op} [{self.variant}]" if self.variant else self.op

    @property
    def method(self) -> str:
        return self.op.split(" ", 1)[0]

    @property
    def path(self) -> str:
        return self.op.split(" ", 1)[1]

    @property
    def cases(self) -> tuple[str, ...]:
        if self.kind is None:
            return ("-",)
        return ("own", "far") if self.kind == "district" else CASES

    def expected(self, caller: str, case: str) -> tuple[Expect, str | None]:
        """(what the cell must answer, the bug reason when it is a known bug)."""
        if caller in self.expect:
            value = self.expect[caller]
        elif self.public:
            value = self.everyone
        elif caller == "forged":
            value = Expect(401, error="token_invalid")
        else:
            value = 401 if caller == "anonymous" else 403
        if isinstance(value, tuple):
            assert len(value) == len(self.cases), f"{self.key}: {caller} needs one answer per case {self.cases}"
            value = value[self.cases.index(case)]
        reason = None
        if isinstance(value, Bug):
            value, reason = value.expected, value.reason
        return (value if isinstance(value, Expect) else _standard(value)), reason

    def request(self, o: SimpleNamespace, world, caller: str) -> dict:
        """The test-client arguments for this row in a case (`o`: the case's objects)."""
        defaults = {
            "student_id": o.student, "school_id": o.school, "class_id": o.klass, "district_id": o.district,
            "venue_id": o.venue, "activity_id": o.activity, "review_id": o.review, "claim_id": o.claim,
            "booking_id": o.booking, "public_id": o.credential, "ref": o.credential,
            "version": world.rule_version, "school_year": world.school_year, "term": 1,
        }
        if self.params:
            defaults.update(self.params(o, world, caller))
        path = self.path.format(**defaults)
        kwargs: dict = {"method": self.method, "path": path}
        for name in ("query", "json"):
            value = getattr(self, name)
            if callable(value):
                value = value(o, world, caller)
            if value is not None:
                kwargs["query_string" if name == "query" else "json"] = value
        if self.form:
            kwargs["data"] = {k: (io.BytesIO(v[0]), v[1]) if isinstance(v, tuple) else v
                              for k, v in self.form(o, world, caller).items()}
            kwargs["content_type"] = "multipart/form-data"
        return kwargs


# --- shorthands -------------------------------------------------------------------------------------

ANY_ROLE = ("student", "guardian", "teacher", "school_admin", "venue_staff", "district_officer", "city_officer",
            "admin")
# Who may read a pupil's record: themself, their guardians, their teachers, their school admin (and
# the admin). Venue staff and officers never read a child's record (SPEC §2: aggregates only).
RECORD_READERS = {"student": (200, N, N), "guardian": (200, N, N), "teacher": (200, N, N),
                  "school_admin": (200, 200, N), "admin": 200}


def every(status, *roles: str) -> dict:
    return dict.fromkeys(roles or ANY_ROLE, status)


def record_readers(status: int) -> dict:
    return {role: tuple(status if s == 200 else s for s in v) if isinstance(v, tuple) else status
            for role, v in RECORD_READERS.items()}


def nonce() -> str:
    return str(uuid.uuid4())


def _scan(o, w, caller):
    """POST /checkins in the caller's mode: a pupil scans a venue code for themself; a guardian a
    code for a child (the case's pupil); venue staff (and the admin) a pupil's pass at an activity."""
    own = w.objects("own")
    if caller == "student":
        return {"code": w.venue_code(o.activity), "nonce": nonce()}
    if caller == "guardian":
        return {"code": w.venue_code(own.activity), "student_id": o.student, "nonce": nonce()}
    return {"student_pass": own.pass_token, "activity_id": o.activity, "direction": "entry", "nonce": nonce()}


def _booking(o, w, caller):
    if caller == "guardian":
        return {"student_id": o.student}
    return {"class_id": o.klass, "seats": 1}


def _claim_form(o, w, caller):
    return {"competition": "深圳市青少年科技创新大赛", "level": "city", "award": "second", "work_title": "水火箭",
            "date": w.today, "evidence": (PNG, "证书.png")}


ROSTER = "学号,姓名,年级,班级\nAZ-0001,周杰,5,5年级(9)班\n".encode()
PAGE = {"per_page": 200}
STATS = {"group_by": "district"}

ROWS: list[Row] = [
    # --- accounts ---------------------------------------------------------------------------------------
    Row("POST /api/v1/auth/login", public=True, everyone=200, json=lambda o, w, c: w.login),
    Row("POST /api/v1/auth/refresh", public=True, everyone=200,
        json=lambda o, w, c: {"refresh_token": w.refresh_token}),
    Row("POST /api/v1/auth/register-guardian", public=True, everyone=201,
        json=lambda o, w, c: {"username": "new-parent", "password": "long-enough-1", "invite_code": w.invite_code}),
    Row("GET /api/v1/me", expect=every(200)),
    Row("POST /api/v1/me/children", json=lambda o, w, c: {"code": w.invite_code},
        expect={"guardian": 201, "admin": 201}),
    Row("GET /api/v1/me/children", kind="student",
        expect={"guardian": (L("student", "student_id"), H("student", "student_id"), H("student", "student_id")),
                "admin": H("student", "student_id")}),  # the admin has no children of their own
    Row("GET /api/v1/users", kind="user", query=PAGE,
        expect={"school_admin": (L("user"), H("user"), H("user")), "admin": L("user")}),
    # A school admin creates teachers of its own school only: a class of another school is refused
    # like a class that does not exist (422 on the body field, indistinguishable from missing).
    Row("POST /api/v1/users", variant="teacher of a class", kind="class",
        json=lambda o, w, c: {"username": "new-teacher", "password": "long-enough-1", "role": "teacher",
                              "school_id": o.klass_school, "class_ids": [o.klass]},
        expect={"school_admin": (201, 201, 422), "admin": 201}),
    # A pupil's account: a school admin only for its own school's pupils (another school's pupil is
    # refused on the body field like a missing one, 422). The own pupil already has one (409).
    Row("POST /api/v1/users", variant="student account", kind="student",
        json=lambda o, w, c: {"username": "new-pupil", "password": "long-enough-1", "role": "student",
                              "student_id": o.student},
        expect={"school_admin": (409, 201, 422), "admin": (409, 201, 201)}),
    # No privilege escalation: a school admin cannot mint an admin (422 on `role`).
    Row("POST /api/v1/users", variant="admin account",
        json={"username": "new-admin", "password": "long-enough-1", "role": "admin"},
        expect={"school_admin": 422, "admin": 201}),

    # --- organisations ----------------------------------------------------------------------------------
    Row("GET /api/v1/districts", kind="district", query=PAGE,
        expect=every(L("district"), "teacher", "school_admin", "venue_staff", "district_officer", "city_officer",
                     "admin")),
    Row("POST /api/v1/districts", json={"name": "龙岗区", "code": "AUTHZ-LG"},
        expect=every(201, "city_officer", "admin")),
    Row("GET /api/v1/districts/{district_id}", kind="district",
        expect=every(200, "teacher", "school_admin", "venue_staff", "district_officer", "city_officer", "admin")),
    Row("GET /api/v1/schools", kind="school", query=PAGE,
        expect={"teacher": (L("school"), H("school"), H("school")),
                "school_admin": (L("school"), H("school"), H("school")),
                "district_officer": (L("school"), L("school"), H("school")),
                "city_officer": L("school"), "admin": L("school")}),
    Row("POST /api/v1/schools", json=lambda o, w, c: {"name": "新建学校", "district_id": o.district},
        expect=every(201, "city_officer", "admin")),
    Row("GET /api/v1/schools/{school_id}", kind="school",
        expect={"teacher": (200, N, N), "school_admin": (200, N, N), "district_officer": (200, 200, N),
                "city_officer": 200, "admin": 200}),
    Row("GET /api/v1/classes", kind="class", query=PAGE,
        expect={"teacher": (L("class"), H("class"), H("class")),
                "school_admin": (L("class"), L("class"), H("class")), "admin": L("class")}),
    Row("POST /api/v1/classes", kind="school",
        json=lambda o, w, c: {"school_id": o.school, "grade": 3, "name": "三年级(9)班"},
        expect={"school_admin": (201, N, N), "admin": 201}),
    Row("GET /api/v1/classes/{class_id}", kind="class",
        expect={"teacher": (200, N, N), "school_admin": (200, 200, N), "admin": 200}),
    Row("GET /api/v1/students", kind="student", query=PAGE,
        expect={"student": (L("student"), H("student"), H("student")),
                "guardian": (L("student"), H("student"), H("student")),
                "teacher": (L("student"), H("student"), H("student")),
                "school_admin": (L("student"), L("student"), H("student")), "admin": L("student")}),
    Row("POST /api/v1/students", kind="school",
        json=lambda o, w, c: {"school_id": o.school, "class_id": o.school_klass, "student_number": "AZ-9001",
                              "name": "新同学"},
        expect={"school_admin": (201, N, N), "admin": 201}),
    # Own school, but a class of another school: refused on the body field (422), never created.
    Row("POST /api/v1/students", variant="class of another school", kind="class",
        json=lambda o, w, c: {"school_id": w.objects("own").school, "class_id": o.klass,
                              "student_number": "AZ-9002", "name": "新同学"},
        expect={"school_admin": (201, 201, 422), "admin": (201, 201, 422)}),
    Row("GET /api/v1/students/{student_id}", kind="student", expect=record_readers(200)),
    Row("PATCH /api/v1/students/{student_id}", kind="student", json={"name": "改名"},
        expect={"school_admin": (200, 200, N), "admin": 200}),
    # Moving one's own pupil into a class of another school: refused on the body field (422).
    Row("PATCH /api/v1/students/{student_id}", variant="move to a class", kind="class",
        params=lambda o, w, c: {"student_id": w.objects("own").student}, json=lambda o, w, c: {"class_id": o.klass},
        expect={"school_admin": (200, 200, 422), "admin": (200, 200, 422)}),
    Row("POST /api/v1/students/{student_id}/guardian-invites", kind="student",
        expect={"teacher": (201, N, N), "school_admin": (201, 201, N), "admin": 201}),
    Row("POST /api/v1/schools/{school_id}/students/import", kind="school",
        form=lambda o, w, c: {"file": (ROSTER, "roster.csv")},
        expect={"school_admin": (200, N, N), "admin": 200}),

    # --- venues, activities, codes and passes -----------------------------------------------------------
    Row("GET /api/v1/venues", kind="venue", query=PAGE,
        expect=every(L("venue"), "teacher", "school_admin", "venue_staff", "district_officer", "city_officer",
                     "admin")),
    Row("POST /api/v1/venues",
        json=lambda o, w, c: {"name": "新场馆", "kind": "museum", "level": "city", "district_id": o.district},
        expect=every(201, "city_officer", "admin")),
    Row("GET /api/v1/venues/{venue_id}", kind="venue",  # the registry is public within the service
        expect=every(200, "teacher", "school_admin", "venue_staff", "district_officer", "city_officer", "admin")),
    Row("PATCH /api/v1/venues/{venue_id}", kind="venue", json={"name": "改名场馆"},
        expect={"venue_staff": (200, N, N), "city_officer": 200, "admin": 200}),
    Row("GET /api/v1/activities", kind="activity", query=PAGE,
        expect={**every(L("activity")), "venue_staff": (L("activity"), H("activity"), H("activity"))}),
    Row("POST /api/v1/activities", kind="venue",
        json=lambda o, w, c: {"venue_id": o.venue, "kind": "lecture", "title": "新讲座",
                              "starts_at": "2030-05-01T09:00:00+08:00", "ends_at": "2030-05-01T11:00:00+08:00"},
        expect={"venue_staff": (201, N, N), "city_officer": 201, "admin": 201}),
    Row("GET /api/v1/activities/{activity_id}", kind="activity", expect=every(200)),
    *[Row(f"GET /api/v1/activities/{{activity_id}}/{name}", kind="activity",
          expect={"venue_staff": (200, N, N), "city_officer": 200, "admin": 200})
      for name in ("code", "code.png", "code.svg")],
    Row("GET /api/v1/students/{student_id}/pass", kind="student", expect=record_readers(200)),
    Row("POST /api/v1/students/{student_id}/pass", kind="student", expect=record_readers(201)),
    Row("GET /api/v1/students/{student_id}/pass.png", kind="student", expect=record_readers(200)),

    # --- scans ------------------------------------------------------------------------------------------
    # The case varies what the caller's mode scopes: a pupil may check in at any venue (own, near, far
    # activity alike); a guardian only for a linked child (SPEC §4.2: otherwise refused
    # `not_guardian`); venue staff only at their own venues' activities (404 elsewhere).
    Row("POST /api/v1/checkins", kind="activity", json=_scan,
        expect={"student": 201, "guardian": (201, refused(422, "not_guardian"), refused(422, "not_guardian")),
                "venue_staff": (201, N, N), "admin": 201}),
    # A pupil naming another pupil still checks in only themself (self mode ignores student_id);
    # in this body venue staff and the admin (staff mode) lack a pass: 422 after authorization.
    Row("POST /api/v1/checkins", variant="code with a student_id", kind="student",
        json=lambda o, w, c: {"code": w.venue_code(w.objects("own").activity), "student_id": o.student,
                              "nonce": nonce()},
        expect={"student": Expect(201, own_checkin=True),
                "guardian": (201, refused(422, "not_guardian"), refused(422, "not_guardian")),
                "venue_staff": 422, "admin": 422}),
    Row("POST /api/v1/checkins/batch", kind="activity",
        json=lambda o, w, c: {"scans": [{"student_pass": w.objects("own").pass_token, "activity_id": o.activity,
                                         "direction": "entry", "nonce": nonce()}]},
        expect={"venue_staff": (ROWS_OK, ROWS_NOT_FOUND, ROWS_NOT_FOUND), "admin": ROWS_OK}),
    # A class trip may go to any venue; the scope is the pupils: another class's pupil is refused per line.
    Row("POST /api/v1/activities/{activity_id}/group-checkins", kind="student",
        params=lambda o, w, c: {"activity_id": w.objects("own").activity},
        json=lambda o, w, c: {"student_ids": [o.student], "direction": "entry"},
        expect={"teacher": (ROWS_OK, ROWS_NOT_FOUND, ROWS_NOT_FOUND), "admin": ROWS_OK}),
    Row("GET /api/v1/students/{student_id}/checkins", kind="student", expect=record_readers(200)),

    # --- ledger and rule sets ---------------------------------------------------------------------------
    Row("GET /api/v1/students/{student_id}/ledger", kind="student", expect=record_readers(200)),
    Row("GET /api/v1/students/{student_id}/ledger/verify", kind="student", expect=record_readers(200)),
    Row("GET /api/v1/rules", expect=every(200)),
    Row("POST /api/v1/rules",
        json=lambda o, w, c: {"version": "authz-1", "effective_from": "2030-09-01", "document": w.rule_document},
        expect=every(201, "city_officer", "admin")),
    Row("GET /api/v1/rules/{version}", expect=every(200)),
    Row("POST /api/v1/rules/{version}/activate", expect=every(200, "city_officer", "admin")),
    Row("POST /api/v1/rules/{version}/simulate", query=lambda o, w, c: {"school_year": w.school_year},
        expect=every(200, "city_officer", "admin")),
    Row("POST /api/v1/rules/{version}/recompute", query=lambda o, w, c: {"school_year": w.school_year},
        expect=every(200, "city_officer", "admin")),

    # --- reviews, claims, term close, adjustments -------------------------------------------------------
    Row("GET /api/v1/reviews", kind="review", query=PAGE,
        expect={"student": (L("review"), H("review"), H("review")),
                "guardian": (L("review"), H("review"), H("review")),
                "teacher": (L("review"), H("review"), H("review")),
                "school_admin": (L("review"), L("review"), H("review")), "admin": L("review")}),
    Row("GET /api/v1/reviews/{review_id}", kind="review", expect=record_readers(200)),
    Row("POST /api/v1/reviews/{review_id}", kind="review", json={"decision": "approve"},
        expect={"teacher": (200, N, N), "school_admin": (200, 200, N), "admin": 200}),
    # Only the pupil or a guardian appeals (the admin is refused by the service with 403).
    Row("POST /api/v1/reviews/{review_id}/appeal", kind="rejected_review",
        params=lambda o, w, c: {"review_id": o.rejected_review}, json={"reason": "证书是清晰的"},
        expect={"student": (200, N, N), "guardian": (200, N, N), "admin": 403}),
    # SPEC §7: claims are submitted by the student, a guardian or a teacher (not the school admin).
    Row("POST /api/v1/students/{student_id}/claims", kind="student", form=_claim_form,
        expect={"student": (201, N, N), "guardian": (201, N, N), "teacher": (201, N, N), "admin": 201}),
    Row("GET /api/v1/claims/{claim_id}/evidence", kind="claim",
        expect={"student": (200, N, N), "guardian": (200, N, N), "teacher": (200, N, N),
                "school_admin": (200, 200, N), "admin": 200}),
    Row("POST /api/v1/schools/{school_id}/terms/{school_year}/{term}/close", kind="school",
        expect={"school_admin": (201, N, N), "admin": 201}),
    Row("POST /api/v1/students/{student_id}/adjustments", kind="student",
        json=lambda o, w, c: {"amount": "1.50", "reason": "补录讲座", "school_year": w.school_year, "term": 1},
        expect={"school_admin": (201, 201, N), "admin": 201}),

    # --- transcripts, progress, credentials, audit ------------------------------------------------------
    Row("GET /api/v1/students/{student_id}/transcript", kind="student", expect=record_readers(200)),
    Row("GET /api/v1/classes/{class_id}/progress", kind="class",
        expect={"teacher": (200, N, N), "school_admin": (200, 200, N), "admin": 200}),
    Row("GET /api/v1/schools/{school_id}/progress.xlsx", kind="school",
        expect={"school_admin": (200, N, N), "admin": 200}),
    Row("POST /api/v1/credentials/verify", kind="credential", public=True, everyone=200,
        json=lambda o, w, c: {"credential": o.credential_jwt}),
    Row("POST /api/v1/credentials/{public_id}/revoke", kind="credential", json={"reason": "家长申请撤销"},
        expect={"school_admin": (200, 200, N), "admin": 200}),
    Row("GET /api/v1/credentials/{public_id}/status", kind="credential", public=True, everyone=200),
    Row("GET /.well-known/jwks.json", public=True, everyone=200),
    Row("GET /verify/{ref}", kind="credential", public=True, everyone=200),
    Row("GET /api/v1/audit", kind="audit", query=PAGE,
        expect={"school_admin": (L("audit"), L("audit"), H("audit")), "admin": L("audit")}),
    Row("GET /api/v1/audit", variant="student_id filter", kind="student",
        query=lambda o, w, c: {"student_id": o.student},
        expect={"school_admin": (200, 200, N), "admin": 200}),

    # --- bureau statistics (a district officer: own district only) ---------------------------------------
    *[Row(f"GET /api/v1/stats/{name}", kind="district",
          query=lambda o, w, c, extra=extra: {**extra, "district_id": o.district},
          expect={"district_officer": (200, N), "city_officer": 200, "admin": 200})
      for name, extra in (("credits", STATS), ("venues", {}))],
    *[Row(f"GET /api/v1/stats/{name}", variant="school_id filter", kind="school",
          query=lambda o, w, c, extra=extra: {**extra, "school_id": o.school},
          expect={"district_officer": (200, 200, N), "city_officer": 200, "admin": 200})
      for name, extra in (("credits", STATS), ("venues", {}))],

    # Aggregate rows: a district officer's answer has rows for its own district and schools only.
    Row("GET /api/v1/stats/credits", variant="rows by district", kind="district", query={"group_by": "district"},
        expect={"district_officer": (L("district", "district_id"), H("district", "district_id")),
                "city_officer": L("district", "district_id"), "admin": L("district", "district_id")}),
    Row("GET /api/v1/stats/credits", variant="rows by school", kind="school", query={"group_by": "school"},
        expect={"district_officer": (L("school", "school_id"), L("school", "school_id"), H("school", "school_id")),
                "city_officer": L("school", "school_id"), "admin": L("school", "school_id")}),

    # --- directory, recommendations, bookings, talent ---------------------------------------------------
    Row("GET /api/v1/directory/activities", public=True, everyone=200),
    Row("GET /api/v1/directory/venues", public=True, everyone=200),
    Row("GET /api/v1/directory/districts", public=True, everyone=200),
    Row("GET /api/v1/students/{student_id}/recommendations", kind="student", expect=record_readers(200)),
    Row("GET /api/v1/activities/{activity_id}/bookings", kind="activity",
        expect={"venue_staff": (200, N, N), "city_officer": 200, "admin": 200}),
    # A teacher books for a class (the case's class), a guardian for a child (the case's pupil).
    Row("POST /api/v1/activities/{activity_id}/bookings", kind="class",
        params=lambda o, w, c: {"activity_id": w.trip_activity}, json=_booking,
        expect={"teacher": (201, N, N), "school_admin": (201, 201, N), "guardian": (201, N, N), "admin": 201}),
    # The other form of body: a guardian cannot book a class, a teacher or school admin not one child.
    Row("POST /api/v1/activities/{activity_id}/bookings", variant="the other role's body",
        params=lambda o, w, c: {"activity_id": w.trip_activity},
        json=lambda o, w, c: _booking(o, w, "teacher" if c == "guardian" else "guardian"),
        expect={"teacher": 403, "school_admin": 403, "guardian": 403, "admin": 201}),
    Row("GET /api/v1/venues/{venue_id}/bookings", kind="venue",
        expect={"venue_staff": (200, N, N), "city_officer": 200, "admin": 200}),
    Row("GET /api/v1/bookings", kind="booking", query=PAGE,
        expect={"student": (L("booking"), H("booking"), H("booking")),
                "guardian": (L("booking"), H("booking"), H("booking")),
                "teacher": (L("booking"), H("booking"), H("booking")),
                "school_admin": (L("booking"), L("booking"), H("booking")),
                "venue_staff": (L("booking"), H("booking"), H("booking")),
                "city_officer": L("booking"), "admin": L("booking")}),
    Row("GET /api/v1/bookings/no-shows", expect=every(200, "venue_staff", "district_officer", "city_officer", "admin")),
    Row("GET /api/v1/bookings/{booking_id}", kind="booking",
        expect={**record_readers(200), "venue_staff": (200, N, N), "city_officer": 200}),
    Row("DELETE /api/v1/bookings/{booking_id}", kind="booking",
        expect={"guardian": (200, N, N), "teacher": (200, N, N), "school_admin": (200, 200, N),
                "venue_staff": (200, N, N), "city_officer": 200, "admin": 200}),
    Row("GET /api/v1/schools/{school_id}/talent", kind="school",
        expect={"school_admin": (200, N, N), "admin": 200}),
]


def rows_by_key() -> dict[str, Row]:
    table: dict[str, Row] = {}
    for row in ROWS:
        assert row.key not in table, f"two rows for {row.key}: give one a variant"
        unknown = set(row.expect) - set(CALLERS)
        assert not unknown, f"{row.key}: unknown callers {unknown}"
        table[row.key] = row
    return table
