"""Guardian invites and registration (SPEC §3, §9): the school issues a one-time code valid 14
days; a parent registers with it (account + link), links more children with further codes, and
then sees exactly those children.

Covered: invite answer (code, expires_at 14 days ahead, with an offset); who may issue (school
admin of the school; not another school's admin: 404; not a guardian: 403); registration creates
the account and the link and logs in; a used code, an expired code and an unknown code are
refused with 422 invite_invalid; a taken username is 409 and leaves the code unused; POST
/me/children links a second child; the guardian's list and /me show both.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from app.auth.models import User
from app.db import utcnow
from app.orgs.models import GuardianInvite, GuardianLink
from tests import factories as f

PASSWORD = "parent-pass-1"


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert set(error) == {"code", "message", "details"} and error["code"] == code
    return error


def _invite(client, actor, pupil):
    return client.post(f"/api/v1/students/{pupil.id}/guardian-invites", headers=f.bearer(actor))


def _register(client, code, username="mama.chen"):
    return client.post("/api/v1/auth/register-guardian",
                       json={"username": username, "password": PASSWORD, "invite_code": code})


def test_school_admin_issues_a_14_day_one_time_code(client):
    pupil = f.student()
    actor = f.user("school_admin", school_=pupil.school)
    before = utcnow()
    response = _invite(client, actor, pupil)
    assert response.status_code == 201, response.json
    body = response.json
    assert body["student_id"] == pupil.id
    assert isinstance(body["code"], str) and len(body["code"]) >= 8
    expires = datetime.fromisoformat(body["expires_at"])
    assert expires.tzinfo is not None
    assert timedelta(days=14) - timedelta(minutes=1) <= expires - before <= timedelta(days=14, minutes=1)
    second = _invite(client, actor, pupil).json
    assert second["code"] != body["code"]


def test_invites_are_scoped(client):
    pupil = f.student()
    other_admin = f.user("school_admin", school_=f.school())
    _assert_error(_invite(client, other_admin, pupil), 404, "not_found")
    parent = f.user("guardian", children=[pupil])
    _assert_error(_invite(client, parent, pupil), 403, "forbidden")
    _assert_error(client.post(f"/api/v1/students/{pupil.id}/guardian-invites"), 401, "unauthorized")


def test_register_with_code_creates_account_and_link(client, db_session):
    pupil = f.student()
    code = _invite(client, f.user("school_admin", school_=pupil.school), pupil).json["code"]
    response = _register(client, code)
    assert response.status_code == 201, response.json
    body = response.json
    assert body["access_token"] and body["refresh_token"]
    assert body["user"]["role"] == "guardian" and body["user"]["username"] == "mama.chen"
    assert body["user"]["children"] == [pupil.id]
    account = db_session.get(User, body["user"]["id"])
    assert db_session.get(GuardianLink, (account.id, pupil.id)) is not None
    invite = db_session.query(GuardianInvite).filter_by(code=code).one()
    assert invite.used_at is not None and invite.used_by == account.id
    # the parent logs in with the chosen password and reads the child
    login = client.post("/api/v1/auth/login", json={"username": "mama.chen", "password": PASSWORD})
    assert login.status_code == 200
    child = client.get(f"/api/v1/students/{pupil.id}", headers={"Authorization": f"Bearer {login.json['access_token']}"})
    assert child.status_code == 200 and child.json["id"] == pupil.id


def test_code_is_case_and_space_tolerant(client):
    pupil = f.student()
    code = _invite(client, f.user("school_admin", school_=pupil.school), pupil).json["code"]
    assert _register(client, f"  {code.lower()} ").status_code == 201


def test_a_code_works_once(client, db_session):
    pupil = f.student()
    code = _invite(client, f.user("school_admin", school_=pupil.school), pupil).json["code"]
    assert _register(client, code, "baba.li").status_code == 201
    again = _register(client, code, "someone.else")
    error = _assert_error(again, 422, "invite_invalid")
    assert "邀请码" in error["message"]
    assert db_session.query(User).filter_by(username="someone.else").count() == 0
    parent = db_session.query(User).filter_by(username="baba.li").one()
    relink = client.post("/api/v1/me/children", json={"code": code}, headers=f.bearer(parent))
    _assert_error(relink, 422, "invite_invalid")


def test_expired_code_is_refused(client, db_session):
    pupil = f.student()
    code = _invite(client, f.user("school_admin", school_=pupil.school), pupil).json["code"]
    invite = db_session.query(GuardianInvite).filter_by(code=code).one()
    invite.expires_at = utcnow() - timedelta(minutes=1)
    db_session.commit()
    _assert_error(_register(client, code), 422, "invite_invalid")
    assert db_session.query(User).filter_by(username="mama.chen").count() == 0


def test_unknown_code_is_refused(client):
    _assert_error(_register(client, "ZZZZZZZZZZ"), 422, "invite_invalid")


def test_taken_username_is_409_and_the_code_stays_usable(client, db_session):
    pupil = f.student()
    code = _invite(client, f.user("school_admin", school_=pupil.school), pupil).json["code"]
    f.user("teacher", username="taken.parent")
    error = _assert_error(_register(client, code, "taken.parent"), 409, "conflict")
    assert "username" in error["details"]["fields"]
    assert db_session.query(GuardianInvite).filter_by(code=code).one().used_at is None
    assert _register(client, code, "free.parent").status_code == 201


def test_register_validates_its_fields(client):
    response = client.post("/api/v1/auth/register-guardian",
                           json={"username": "ab", "password": "short", "invite_code": "X"})
    fields = _assert_error(response, 422, "validation_error")["details"]["fields"]
    assert {"username", "password", "invite_code"} <= set(fields)


def test_guardian_links_a_second_child_and_sees_both(client):
    first, second, stranger = f.student(), f.student(), f.student()
    code1 = _invite(client, f.user("school_admin", school_=first.school), first).json["code"]
    code2 = _invite(client, f.user("school_admin", school_=second.school), second).json["code"]
    token = _register(client, code1).json["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    linked = client.post("/api/v1/me/children", json={"code": code2}, headers=headers)
    assert linked.status_code == 201, linked.json
    assert sorted(linked.json["children"]) == sorted([first.id, second.id])

    listed = client.get("/api/v1/students", headers=headers)
    assert listed.status_code == 200
    assert {s["id"] for s in listed.json["items"]} == {first.id, second.id} and listed.json["total"] == 2
    for child in (first, second):
        assert client.get(f"/api/v1/students/{child.id}", headers=headers).status_code == 200
    _assert_error(client.get(f"/api/v1/students/{stranger.id}", headers=headers), 404, "not_found")
    me = client.get("/api/v1/me", headers=headers)
    assert sorted(me.json["children"]) == sorted([first.id, second.id])


def test_only_guardians_link_children(client):
    pupil = f.student()
    code = _invite(client, f.user("school_admin", school_=pupil.school), pupil).json["code"]
    teacher = f.user("teacher", school_=pupil.school)
    _assert_error(client.post("/api/v1/me/children", json={"code": code}, headers=f.bearer(teacher)), 403, "forbidden")
