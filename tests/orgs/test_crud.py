"""Districts, schools, classes and students over HTTP (SPEC §3, §9): creation bodies, paged lists
({"items", "page", "per_page", "total"}), the uniqueness rules and who may create what.

Covered: create + list + fetch for each; paging (per_page respected, total right, last page
short, out-of-range page empty); student number unique per school (409) but free across
schools; a student's grade comes from the class; class grade 1–9 (422); class names unique per
school (409); district codes unique (409); a school admin confined to its school.
"""

from __future__ import annotations

import pytest

from tests import factories as f


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert set(error) == {"code", "message", "details"} and error["code"] == code
    return error


def _post(client, account, url, **body):
    return client.post(f"/api/v1/{url}", json=body, headers=f.bearer(account))


def _get(client, account, url):
    return client.get(f"/api/v1/{url}", headers=f.bearer(account))


def test_create_and_fetch_district_school_class_student(client):
    admin = f.user("admin")
    district = _post(client, admin, "districts", name="宝安区", code="BA")
    assert district.status_code == 201, district.json
    assert district.json == {"id": district.json["id"], "name": "宝安区", "code": "BA"}
    school = _post(client, admin, "schools", name="宝安实验学校", district_id=district.json["id"], pilot=True)
    assert school.status_code == 201, school.json
    assert school.json["pilot"] is True and school.json["district_id"] == district.json["id"]
    klass = _post(client, admin, "classes", school_id=school.json["id"], grade=4, name="四年级(2)班")
    assert klass.status_code == 201, klass.json
    assert klass.json["grade"] == 4 and klass.json["name"] == "四年级(2)班"
    pupil = _post(client, admin, "students", school_id=school.json["id"], class_id=klass.json["id"],
                  student_number="20250001", name="陈小明")
    assert pupil.status_code == 201, pupil.json
    assert pupil.json["grade"] == 4  # from the class
    assert pupil.json["active"] is True and pupil.json["student_number"] == "20250001"

    for url, created in (("districts", district), ("schools", school), ("classes", klass), ("students", pupil)):
        fetched = _get(client, admin, f"{url}/{created.json['id']}")
        assert fetched.status_code == 200, (url, fetched.json)
        assert fetched.json == created.json


def test_grade_sent_for_a_student_is_refused(client):
    """The grade is the class's; a grade in the body is an unknown (dump-only) field."""
    admin, klass = f.user("admin"), f.school_class(grade=6)
    response = _post(client, admin, "students", school_id=klass.school_id, class_id=klass.id,
                     student_number="G1", name="王五", grade=2)
    assert list(_assert_error(response, 422, "validation_error")["details"]["fields"]) == ["grade"]


@pytest.mark.parametrize(
    ("url", "make"),
    [
        ("districts", lambda i: f.district(code=f"PG{i}")),
        ("schools", lambda i: f.school()),
        ("classes", lambda i: f.school_class()),
        ("students", lambda i: f.student()),
    ],
)
def test_lists_are_paged(client, url, make):
    admin = f.user("admin")
    ids = [make(i).id for i in range(7)]
    ids = sorted({*ids, *[item["id"] for item in _get(client, admin, f"{url}?per_page=500").json["items"]]})
    total = len(ids)
    first = _get(client, admin, f"{url}?per_page=3")
    assert first.status_code == 200, first.json
    assert set(first.json) == {"items", "page", "per_page", "total"}
    assert first.json["page"] == 1 and first.json["per_page"] == 3 and first.json["total"] == total
    assert [item["id"] for item in first.json["items"]] == ids[:3]
    last_page = (total + 2) // 3
    last = _get(client, admin, f"{url}?per_page=3&page={last_page}").json
    assert [item["id"] for item in last["items"]] == ids[(last_page - 1) * 3:]
    beyond = _get(client, admin, f"{url}?per_page=3&page={last_page + 1}").json
    assert beyond["items"] == [] and beyond["total"] == total
    default = _get(client, admin, url).json
    assert default["page"] == 1 and default["per_page"] == 50


@pytest.mark.parametrize("query", ["per_page=0", "per_page=501", "page=0", "page=abc"])
def test_bad_paging_is_422(client, query):
    error = _assert_error(_get(client, f.user("admin"), f"districts?{query}"), 422, "validation_error")
    assert error["details"]["fields"]


def test_student_number_is_unique_per_school_only(client):
    admin = f.user("admin")
    klass, other_class = f.school_class(), f.school_class()
    body = {"student_number": "20250099", "name": "李雷"}
    first = _post(client, admin, "students", school_id=klass.school_id, class_id=klass.id, **body)
    assert first.status_code == 201
    again = _post(client, admin, "students", school_id=klass.school_id, class_id=klass.id, **body)
    error = _assert_error(again, 409, "conflict")
    assert "student_number" in error["details"]["fields"]
    elsewhere = _post(client, admin, "students", school_id=other_class.school_id, class_id=other_class.id, **body)
    assert elsewhere.status_code == 201, elsewhere.json


def test_student_class_must_be_in_the_school(client):
    admin = f.user("admin")
    school, foreign_class = f.school(), f.school_class()
    response = _post(client, admin, "students", school_id=school.id, class_id=foreign_class.id,
                     student_number="X1", name="韩梅梅")
    assert "class_id" in _assert_error(response, 422, "validation_error")["details"]["fields"]


@pytest.mark.parametrize("grade", [0, 10, 12, -1])
def test_class_grade_outside_1_to_9_is_422(client, grade):
    response = _post(client, f.user("admin"), "classes", school_id=f.school().id, grade=grade, name="十年级")
    error = _assert_error(response, 422, "validation_error")
    assert list(error["details"]["fields"]) == ["grade"]


def test_class_name_is_unique_per_school(client):
    admin, school = f.user("admin"), f.school()
    assert _post(client, admin, "classes", school_id=school.id, grade=1, name="一(1)班").status_code == 201
    again = _post(client, admin, "classes", school_id=school.id, grade=2, name="一(1)班")
    assert "name" in _assert_error(again, 409, "conflict")["details"]["fields"]
    other = _post(client, admin, "classes", school_id=f.school().id, grade=1, name="一(1)班")
    assert other.status_code == 201


def test_district_code_is_unique(client):
    admin = f.user("admin")
    assert _post(client, admin, "districts", name="龙岗区", code="LG").status_code == 201
    again = _post(client, admin, "districts", name="龙岗区二", code="LG")
    assert "code" in _assert_error(again, 409, "conflict")["details"]["fields"]


def test_school_needs_an_existing_district(client):
    response = _post(client, f.user("admin"), "schools", name="无区学校", district_id=987654)
    assert "district_id" in _assert_error(response, 422, "validation_error")["details"]["fields"]


def test_missing_required_fields_are_named(client):
    response = _post(client, f.user("admin"), "students", name="只有名字")
    fields = _assert_error(response, 422, "validation_error")["details"]["fields"]
    assert {"school_id", "class_id", "student_number"} <= set(fields)


def test_school_admin_creates_classes_and_students_in_own_school_only(client):
    school, other = f.school(), f.school()
    actor = f.user("school_admin", school_=school)
    own = _post(client, actor, "classes", school_id=school.id, grade=2, name="二(1)班")
    assert own.status_code == 201
    _assert_error(_post(client, actor, "classes", school_id=other.id, grade=2, name="二(1)班"), 404, "not_found")
    foreign_class = f.school_class(other)
    response = _post(client, actor, "students", school_id=other.id, class_id=foreign_class.id,
                     student_number="Y1", name="外校生")
    _assert_error(response, 404, "not_found")
    pupil = _post(client, actor, "students", school_id=school.id, class_id=own.json["id"],
                  student_number="Y1", name="本校生")
    assert pupil.status_code == 201 and pupil.json["grade"] == 2


@pytest.mark.parametrize("role", ["teacher", "school_admin", "district_officer", "venue_staff"])
def test_only_admin_and_city_officer_create_districts_and_schools(client, role):
    actor = f.user(role, school_=f.school())
    _assert_error(_post(client, actor, "districts", name="新区", code="NEW"), 403, "forbidden")
    _assert_error(_post(client, actor, "schools", name="新校", district_id=f.district().id), 403, "forbidden")


def test_city_officer_creates_districts_and_schools(client):
    officer = f.user("city_officer")
    district = _post(client, officer, "districts", name="光明区", code="GM")
    assert district.status_code == 201
    assert _post(client, officer, "schools", name="光明小学", district_id=district.json["id"]).status_code == 201


def test_school_admin_moves_and_renames_a_student(client):
    school = f.school()
    actor = f.user("school_admin", school_=school)
    pupil = f.student(f.school_class(school, grade=3))
    upper = f.school_class(school, grade=4)
    moved = client.patch(f"/api/v1/students/{pupil.id}", json={"class_id": upper.id, "name": "新名字"},
                         headers=f.bearer(actor))
    assert moved.status_code == 200, moved.json
    assert moved.json["class_id"] == upper.id and moved.json["grade"] == 4 and moved.json["name"] == "新名字"
    foreign = client.patch(f"/api/v1/students/{pupil.id}", json={"class_id": f.school_class().id},
                           headers=f.bearer(actor))
    assert "class_id" in _assert_error(foreign, 422, "validation_error")["details"]["fields"]
