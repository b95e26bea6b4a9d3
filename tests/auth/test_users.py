"""Account creation (POST /api/v1/users, SPEC §9): every role with the links that define its scope,
a school admin confined to its own school, and the refusals (duplicate username, short password,
missing scope links) in the error envelope.
"""

from __future__ import annotations

import pytest

from app.auth.models import StaffVenue, TeacherClass, User
from tests import factories as f

USERS = "/api/v1/users"
PASSWORD = "long-enough-1"


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert set(error) == {"code", "message", "details"} and error["code"] == code
    return error


def _create(client, actor, **body):
    body.setdefault("password", PASSWORD)
    return client.post(USERS, json=body, headers=f.bearer(actor))


def _logs_in(client, username) -> dict:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.json
    return response.json["user"]


def test_admin_creates_every_role_with_its_scope(client, db_session):
    admin = f.user("admin")
    district = f.district()
    school = f.school(district)
    klass_a, klass_b = f.school_class(school), f.school_class(school)
    pupil = f.student(klass_a)
    venue = f.venue(district)

    cases = {
        "student": ({"student_id": pupil.id}, {"student_id": pupil.id, "school_id": school.id}),
        "guardian": ({}, {"school_id": None, "children": []}),
        "teacher": ({"school_id": school.id, "class_ids": [klass_a.id, klass_b.id]},
                    {"school_id": school.id}),
        "school_admin": ({"school_id": school.id}, {"school_id": school.id}),
        "venue_staff": ({"venue_ids": [venue.id]}, {"venue_ids": [venue.id], "school_id": None}),
        "district_officer": ({"district_id": district.id}, {"district_id": district.id}),
        "city_officer": ({}, {"district_id": None, "school_id": None}),
        "admin": ({}, {}),
    }
    for role, (links, expected) in cases.items():
        username = f"new_{role}"
        response = _create(client, admin, username=username, role=role, display_name=f"{role} 新账号", **links)
        assert response.status_code == 201, (role, response.json)
        body = response.json
        assert body["id"] and body["role"] == role and body["username"] == username and body["active"] is True
        assert "password" not in body
        for key, value in expected.items():
            assert body[key] == value, (role, key, body)
        assert _logs_in(client, username)["id"] == body["id"]

    teacher = db_session.query(User).filter_by(username="new_teacher").one()
    assert {tc.class_id for tc in db_session.query(TeacherClass).filter_by(user_id=teacher.id)} == {klass_a.id, klass_b.id}
    staff = db_session.query(User).filter_by(username="new_venue_staff").one()
    assert [sv.venue_id for sv in db_session.query(StaffVenue).filter_by(user_id=staff.id)] == [venue.id]
    # the new teacher reads its classes' students
    pupil_view = client.get(f"/api/v1/students/{pupil.id}", headers=f.bearer(teacher))
    assert pupil_view.status_code == 200


@pytest.mark.parametrize(
    ("role", "field"),
    [("student", "student_id"), ("teacher", "school_id"), ("school_admin", "school_id"),
     ("district_officer", "district_id")],
)
def test_a_role_without_its_scope_link_is_refused(client, role, field):
    response = _create(client, f.user("admin"), username=f"lonely_{role}", role=role)
    error = _assert_error(response, 422, "validation_error")
    assert field in error["details"]["fields"]


def test_a_student_gets_one_account_only(client):
    admin, pupil = f.user("admin"), f.student()
    assert _create(client, admin, username="first_account", role="student", student_id=pupil.id).status_code == 201
    second = _create(client, admin, username="second_account", role="student", student_id=pupil.id)
    assert "student_id" in _assert_error(second, 409, "conflict")["details"]["fields"]


def test_teacher_classes_must_belong_to_the_school(client, db_session):
    admin, school = f.user("admin"), f.school()
    own_class, foreign_class = f.school_class(school), f.school_class(f.school())
    response = _create(client, admin, username="wrong_classes", role="teacher", school_id=school.id,
                       class_ids=[own_class.id, foreign_class.id])
    assert "class_ids" in _assert_error(response, 422, "validation_error")["details"]["fields"]
    # nothing half-made is left behind (the account is not written before its links are checked)
    assert db_session.query(User).filter_by(username="wrong_classes").count() == 0
    assert db_session.query(TeacherClass).filter_by(class_id=own_class.id).count() == 0


def test_unknown_venue_is_refused(client, db_session):
    response = _create(client, f.user("admin"), username="ghost_staff", role="venue_staff", venue_ids=[987654])
    assert "venue_ids" in _assert_error(response, 422, "validation_error")["details"]["fields"]
    assert db_session.query(User).filter_by(username="ghost_staff").count() == 0


def test_school_admin_creates_in_own_school_only(client, db_session):
    school, other = f.school(), f.school()
    actor = f.user("school_admin", school_=school)
    own_class, foreign_class = f.school_class(school), f.school_class(other)

    # school_id is forced to the admin's own school, whatever the body says
    teacher = _create(client, actor, username="own_teacher", role="teacher", school_id=other.id,
                      class_ids=[own_class.id])
    assert teacher.status_code == 201, teacher.json
    assert teacher.json["school_id"] == school.id and teacher.json["class_ids"] == [own_class.id]

    pupil = _create(client, actor, username="own_pupil", role="student", student_id=f.student(own_class).id)
    assert pupil.status_code == 201 and pupil.json["school_id"] == school.id

    foreign_pupil = _create(client, actor, username="foreign_pupil", role="student",
                            student_id=f.student(foreign_class).id)
    assert "student_id" in _assert_error(foreign_pupil, 422, "validation_error")["details"]["fields"]

    foreign_teacher = _create(client, actor, username="foreign_teacher", role="teacher", class_ids=[foreign_class.id])
    assert "class_ids" in _assert_error(foreign_teacher, 422, "validation_error")["details"]["fields"]

    for role in ("admin", "city_officer", "district_officer", "venue_staff", "guardian"):
        refused = _create(client, actor, username=f"too_much_{role}", role=role)
        assert "role" in _assert_error(refused, 422, "validation_error")["details"]["fields"], role


def test_school_admin_lists_own_school_accounts_only(client):
    school = f.school()
    actor = f.user("school_admin", school_=school)
    colleague = f.user("teacher", school_=school)
    f.user("teacher", school_=f.school())
    f.user("city_officer")
    listed = client.get(USERS, headers=f.bearer(actor))
    assert listed.status_code == 200
    assert {u["id"] for u in listed.json["items"]} == {actor.id, colleague.id}
    assert listed.json["total"] == 2


@pytest.mark.parametrize("role", ["teacher", "guardian", "student", "venue_staff", "district_officer", "city_officer"])
def test_other_roles_cannot_create_or_list_accounts(client, role):
    actor = f.user(role)
    _assert_error(_create(client, actor, username="sneaky", role="admin"), 403, "forbidden")
    _assert_error(client.get(USERS, headers=f.bearer(actor)), 403, "forbidden")


def test_duplicate_username_is_409(client):
    admin = f.user("admin")
    f.user("teacher", username="taken.name")
    response = _create(client, admin, username="taken.name", role="city_officer")
    error = _assert_error(response, 409, "conflict")
    assert "username" in error["details"]["fields"]


def test_short_password_is_422_with_field_message(client):
    response = _create(client, f.user("admin"), username="short.pw", role="city_officer", password="short")
    error = _assert_error(response, 422, "validation_error")
    assert list(error["details"]["fields"]) == ["password"]
    assert isinstance(error["details"]["fields"]["password"], list) and error["details"]["fields"]["password"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"username": "ab", "role": "admin"}, "username"),
     ({"username": "has space", "role": "admin"}, "username"),
     ({"username": "fine.name", "role": "emperor"}, "role"),
     ({"username": "fine.name"}, "role")],
)
def test_bad_account_fields_are_422(client, body, field):
    error = _assert_error(_create(client, f.user("admin"), **body), 422, "validation_error")
    assert field in error["details"]["fields"]
