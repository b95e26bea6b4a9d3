"""The small city the authorization matrix runs against, built once per module with tests/factories.py.

Every caller sits on side A; each kind of object exists three times, as seen from that caller:

* ``own``  — the caller's own object: pupil 甲 (class A1a of school A1 in district A; the student
  account is 甲's, the guardian is 甲's parent, the teacher teaches A1a, the school admin runs A1),
  venue V-own (the venue staff's), activity at V-own, 甲's reviews, claim, booking, credential …
* ``near`` — one step outside the narrowest scope: pupil 乙 in class A1b of the *same* school
  (a teacher's or parent's "no", a school admin's "yes"), school A2 / venue V-near in the *same*
  district (a school admin's or venue staff's "no", a district officer's "yes"), …
* ``far``  — the same objects in another district B (only the admin and, for city-wide things, the
  city officer may reach them).

Only plain values (ids, tokens) are kept: the matrix runs each request in a fresh session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace

import jwt
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.audit.service import record_read
from app.auth.models import ROLES
from app.auth.tokens import issue_tokens
from app.credits.models import RuleVersion
from app.credits.rules import local_date, school_year_of
from app.db import utcnow
from app.extensions import db
from app.matching import bookings
from app.orgs import service as orgs_service
from app.reviews import service as reviews
from app.transcripts.models import IssuedCredential
from app.transcripts.service import signed_head
from app.venues import codes
from tests import factories as f

# The roles are the code's own (app/auth/models.py): a new role joins the matrix, denied by default.
# `forged`: the admin's own claims signed with a key that is not the server's — every operation
# that needs a login must refuse it (401 token_invalid), whoever it claims to be.
CALLERS = ("anonymous", "forged", *ROLES)
CASES = ("own", "near", "far")
# PNG by its magic bytes (evidence is recognised by its content, not its name).
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
MISSING_ID = 2_000_000_000  # an id no object has: what an out-of-scope id must be indistinguishable from


@dataclass
class World:
    headers: dict[str, dict]
    cases: dict[str, SimpleNamespace]
    school_year: str
    login: dict
    refresh_token: str
    invite_code: str
    rule_document: dict
    trip_activity: int
    rule_version: str
    today: str

    def objects(self, case: str) -> SimpleNamespace:
        """The objects of a scope case; operations without a scoped object use the caller's own."""
        return self.cases["own" if case == "-" else case]

    def venue_code(self, activity_id: int) -> str:
        """A venue entry code valid now (codes rotate every 30 s, so one is made per request)."""
        return codes.venue_code(activity_id, "entry", utcnow()).token


def _claim(student, actor, title):
    return reviews.submit_claim(
        student=student, actor=actor, competition="深圳市青少年科技创新大赛", level="city", award="first",
        work_title=title, awarded_on=local_date(utcnow()) - timedelta(days=1), filename="证书.png", data=PNG)


def _forged(user) -> str:
    now = utcnow()
    claims = {"sub": str(user.id), "typ": "access", "role": user.role, "iat": now, "nbf": now,
              "exp": now + timedelta(hours=1)}
    return jwt.encode(claims, "not-the-server-key-" + "x" * 32, algorithm="HS256")


def build() -> World:
    """Create the city and the callers; commit (savepoints of the module's transaction)."""
    year = school_year_of(local_date(utcnow()))
    district_a, district_b = f.district("福田区"), f.district("南山区")
    school_a1, school_a2 = f.school(district_a, name="福田实验学校"), f.school(district_a, name="福田第二学校")
    school_b1 = f.school(district_b, name="南山实验学校")
    class_a1a, class_a1b = f.school_class(school_a1, grade=5), f.school_class(school_a1, grade=5)
    class_a2a, class_b1a = f.school_class(school_a2, grade=5), f.school_class(school_b1, grade=5)
    pupil_own, pupil_near = f.student(class_a1a, name="王小明"), f.student(class_a1b, name="李华")
    pupil_far = f.student(class_b1a, name="陈静")
    f.student(class_a2a, name="赵磊")
    venue_own, venue_near = f.venue(district_a, name="深圳科技馆"), f.venue(district_a, name="福田科普基地")
    venue_far = f.venue(district_b, name="南山博物馆")
    activity_own, activity_near, activity_far = f.activity(venue_own), f.activity(venue_near), f.activity(venue_far)
    now = utcnow()
    trip = f.activity(venue_far, kind="workshop", starts_at=now + timedelta(days=2),
                      ends_at=now + timedelta(days=2, hours=3), capacity=100)

    callers = {
        "student": f.student_user(pupil_own),
        "guardian": f.user("guardian", children=[pupil_own]),
        "teacher": f.user("teacher", school_=school_a1, classes=[class_a1a]),
        "school_admin": f.user("school_admin", school_=school_a1),
        "venue_staff": f.user("venue_staff", venues=[venue_own]),
        "district_officer": f.user("district_officer", district_=district_a),
        "city_officer": f.user("city_officer"),
        "admin": f.user("admin"),
    }
    admin = callers["admin"]
    teacher_near = f.user("teacher", school_=school_a2, classes=[class_a2a])
    teacher_far = f.user("teacher", school_=school_b1, classes=[class_b1a])

    per_pupil = {}
    for pupil, activity in ((pupil_own, activity_own), (pupil_near, activity_near), (pupil_far, activity_far)):
        claim, review = _claim(pupil, admin, "智能垃圾分类机器人")
        _, rejected = _claim(pupil, admin, "火星车模型")
        reviews.decide(user=admin, review_id=rejected.id, decision="reject", reason="证书不清晰")
        booking = bookings.book_student(actor=admin, activity=activity, student=pupil)
        signed_head(pupil, year, actor_id=None)
        db.session.commit()
        credential = db.session.scalar(select(IssuedCredential).where(IssuedCredential.student_id == pupil.id))
        record_read(admin, pupil, "authz_world")
        audit = db.session.scalar(select(AuditEntry.id).where(AuditEntry.student_id == pupil.id))
        per_pupil[pupil.id] = {"claim": claim.id, "review": review.id, "rejected_review": rejected.id,
                               "booking": booking.id, "credential": credential.public_id,
                               "credential_jwt": credential.token, "audit": audit}

    def case(pupil, klass, school, school_klass, district, venue, activity, user):
        return SimpleNamespace(
            student=pupil.id, klass=klass.id, klass_school=klass.school_id, school=school.id,
            school_klass=school_klass.id, district=district.id, venue=venue.id, activity=activity.id,
            user=user.id, pass_token=codes.student_pass(pupil.id, pupil.pass_version), **per_pupil[pupil.id])

    cases = {
        "own": case(pupil_own, class_a1a, school_a1, class_a1a, district_a, venue_own, activity_own,
                    callers["teacher"]),
        "near": case(pupil_near, class_a1b, school_a2, class_a2a, district_a, venue_near, activity_near,
                     teacher_near),
        "far": case(pupil_far, class_b1a, school_b1, class_b1a, district_b, venue_far, activity_far, teacher_far),
    }
    invite = orgs_service.issue_guardian_invite(student=pupil_near, actor=admin)
    rules = db.session.scalars(select(RuleVersion).where(RuleVersion.active.is_(True))).one()
    world = World(
        headers={"anonymous": {}, "forged": {"Authorization": f"Bearer {_forged(admin)}"},
                 **{role: f.bearer(user) for role, user in callers.items()}},
        cases=cases,
        school_year=year,
        login={"username": callers["student"].username, "password": f.PASSWORD},
        refresh_token=issue_tokens(callers["student"])["refresh_token"],
        invite_code=invite.code,
        rule_document=dict(rules.document),
        rule_version=rules.version,
        trip_activity=trip.id,
        today=local_date(now).isoformat(),
    )
    db.session.commit()
    return world
