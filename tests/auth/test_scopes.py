"""Who sees which student and school (SPEC §2): an object outside the caller's scope answers 404,
exactly like a missing one, so ids cannot be probed; a role that can never use a route gets 403.

Covered: teacher (own classes only, not another class of the same school, not another school);
school admin (own school); guardian (linked children only, in the list and one by one); student
(only themself); district officer (own district's schools; no student records at all); venue
staff (no student records); city officer (every school); the scope filters on list queries.
"""

from __future__ import annotations

import pytest

from tests import factories as f


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert set(error) == {"code", "message", "details"} and error["code"] == code
    return error


@pytest.fixture
def city():
    """Two districts; district A has school A (classes A1, A2), district B has school B (class B1)."""
    district_a, district_b = f.district("福田区"), f.district("南山区")
    school_a, school_b = f.school(district_a), f.school(district_b)
    class_a1, class_a2 = f.school_class(school_a, grade=3), f.school_class(school_a, grade=4)
    class_b1 = f.school_class(school_b, grade=3)
    return {
        "district_a": district_a, "district_b": district_b,
        "school_a": school_a, "school_b": school_b,
        "class_a1": class_a1, "class_a2": class_a2, "class_b1": class_b1,
        "pupil_a1": f.student(class_a1), "pupil_a1b": f.student(class_a1),
        "pupil_a2": f.student(class_a2), "pupil_b1": f.student(class_b1),
    }


def _student(client, account, pupil):
    return client.get(f"/api/v1/students/{pupil.id}", headers=f.bearer(account))


def _listed(client, account, url="/api/v1/students") -> set[int]:
    response = client.get(url, headers=f.bearer(account))
    assert response.status_code == 200, response.json
    return {item["id"] for item in response.json["items"]}


def test_teacher_reads_own_class_only(client, city):
    teacher = f.user("teacher", school_=city["school_a"], classes=[city["class_a1"]])
    own = _student(client, teacher, city["pupil_a1"])
    assert own.status_code == 200, own.json
    assert own.json["id"] == city["pupil_a1"].id and own.json["grade"] == 3
    _assert_error(_student(client, teacher, city["pupil_a2"]), 404, "not_found")  # same school, other class
    _assert_error(_student(client, teacher, city["pupil_b1"]), 404, "not_found")  # other school
    assert _listed(client, teacher) == {city["pupil_a1"].id, city["pupil_a1b"].id}


def test_out_of_scope_answers_exactly_like_a_missing_student(client, city):
    teacher = f.user("teacher", school_=city["school_a"], classes=[city["class_a1"]])
    hidden = _student(client, teacher, city["pupil_b1"])
    missing = client.get("/api/v1/students/987654", headers=f.bearer(teacher))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.get_json() == missing.get_json()


def test_teacher_cannot_filter_their_way_into_another_school(client, city):
    teacher = f.user("teacher", school_=city["school_a"], classes=[city["class_a1"]])
    url = f"/api/v1/students?school_id={city['school_b'].id}"
    assert _listed(client, teacher, url) == set()
    assert _listed(client, teacher, f"/api/v1/students?class_id={city['class_a2'].id}") == set()


def test_teacher_sees_own_classes_and_school_only(client, city):
    teacher = f.user("teacher", school_=city["school_a"], classes=[city["class_a1"]])
    assert _listed(client, teacher, "/api/v1/classes") == {city["class_a1"].id}
    _assert_error(client.get(f"/api/v1/classes/{city['class_a2'].id}", headers=f.bearer(teacher)), 404, "not_found")
    assert _listed(client, teacher, "/api/v1/schools") == {city["school_a"].id}
    _assert_error(client.get(f"/api/v1/schools/{city['school_b'].id}", headers=f.bearer(teacher)), 404, "not_found")


def test_school_admin_sees_own_school_only(client, city):
    admin = f.user("school_admin", school_=city["school_a"])
    for pupil in ("pupil_a1", "pupil_a2"):
        assert _student(client, admin, city[pupil]).status_code == 200
    _assert_error(_student(client, admin, city["pupil_b1"]), 404, "not_found")
    assert _listed(client, admin) == {city[p].id for p in ("pupil_a1", "pupil_a1b", "pupil_a2")}
    assert _listed(client, admin, "/api/v1/classes") == {city["class_a1"].id, city["class_a2"].id}
    patch = client.patch(f"/api/v1/students/{city['pupil_b1'].id}", json={"name": "改名"}, headers=f.bearer(admin))
    _assert_error(patch, 404, "not_found")


def test_guardian_sees_linked_children_only(client, city):
    parent = f.user("guardian", children=[city["pupil_a1"], city["pupil_b1"]])
    assert _listed(client, parent) == {city["pupil_a1"].id, city["pupil_b1"].id}
    assert _student(client, parent, city["pupil_b1"]).status_code == 200
    _assert_error(_student(client, parent, city["pupil_a1b"]), 404, "not_found")  # a classmate
    _assert_error(_student(client, parent, city["pupil_a2"]), 404, "not_found")


def test_student_sees_only_themself(client, city):
    account = f.student_user(city["pupil_a1"])
    assert _student(client, account, city["pupil_a1"]).status_code == 200
    _assert_error(_student(client, account, city["pupil_a1b"]), 404, "not_found")  # classmate
    assert _listed(client, account) == {city["pupil_a1"].id}


def test_district_officer_reads_own_district_schools_only(client, city):
    officer = f.user("district_officer", district_=city["district_a"])
    own = client.get(f"/api/v1/schools/{city['school_a'].id}", headers=f.bearer(officer))
    assert own.status_code == 200 and own.json["id"] == city["school_a"].id
    _assert_error(client.get(f"/api/v1/schools/{city['school_b'].id}", headers=f.bearer(officer)), 404, "not_found")
    assert _listed(client, officer, "/api/v1/schools") == {city["school_a"].id}
    url = f"/api/v1/schools?district_id={city['district_b'].id}"
    assert _listed(client, officer, url) == set()


def test_district_officer_cannot_read_student_records(client, city):
    """Officers see aggregates only (SPEC §2): the student routes are closed to the role (403)."""
    officer = f.user("district_officer", district_=city["district_a"])
    _assert_error(client.get("/api/v1/students", headers=f.bearer(officer)), 403, "forbidden")
    _assert_error(_student(client, officer, city["pupil_a1"]), 403, "forbidden")


def test_venue_staff_cannot_read_students_or_schools(client, city):
    staff = f.user("venue_staff", venues=[f.venue(city["district_a"])])
    _assert_error(_student(client, staff, city["pupil_a1"]), 403, "forbidden")
    _assert_error(client.get("/api/v1/students", headers=f.bearer(staff)), 403, "forbidden")
    _assert_error(client.get("/api/v1/schools", headers=f.bearer(staff)), 403, "forbidden")


def test_city_officer_sees_every_school_but_no_student(client, city):
    officer = f.user("city_officer")
    assert _listed(client, officer, "/api/v1/schools") == {city["school_a"].id, city["school_b"].id}
    for key in ("school_a", "school_b"):
        assert client.get(f"/api/v1/schools/{city[key].id}", headers=f.bearer(officer)).status_code == 200
    _assert_error(_student(client, officer, city["pupil_b1"]), 403, "forbidden")


def test_admin_sees_everyone(client, city):
    admin = f.user("admin")
    assert _listed(client, admin) == {city[p].id for p in ("pupil_a1", "pupil_a1b", "pupil_a2", "pupil_b1")}
    assert _student(client, admin, city["pupil_b1"]).status_code == 200


def test_each_request_is_answered_for_its_own_caller(client, city):
    """Requests in one app context must not share the authenticated user (the test harness does
    exactly that: requests run inside the fixture's app context)."""
    teacher = f.user("teacher", school_=city["school_a"], classes=[city["class_a1"]])
    other = f.user("teacher", school_=city["school_b"], classes=[city["class_b1"]])
    assert _student(client, teacher, city["pupil_a1"]).status_code == 200
    _assert_error(_student(client, other, city["pupil_a1"]), 404, "not_found")
    _assert_error(client.get("/api/v1/me"), 401, "unauthorized")
