"""Roster import (POST /api/v1/schools/{id}/students/import, SPEC §9): CSV or XLSX, Chinese or
English headers, all-or-nothing unless ?partial=true, idempotent upserts by student number.

Covered: Chinese-header CSV creating missing classes; English headers; XLSX built with
openpyxl (numbers as cells); GBK-encoded CSV; every bad row reported as {row, column, reason}
(missing name, grade 12, duplicate number in the file, class/grade conflict) with nothing
imported; ?partial=true importing the good rows and reporting the bad; re-import changes nothing;
a changed name or class updates; missing headers and empty uploads; a teacher is refused (403)
and another school's admin gets 404.
"""

from __future__ import annotations

import io
import zipfile

import pytest
from openpyxl import Workbook

from app.orgs.models import SchoolClass, Student
from tests import factories as f


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert set(error) == {"code", "message", "details"} and error["code"] == code
    return error


def _csv(rows, header=("学号", "姓名", "年级", "班级"), encoding="utf-8") -> bytes:
    lines = [",".join(header), *(",".join(str(cell) for cell in row) for row in rows)]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def _xlsx(rows, header=("学号", "姓名", "年级", "班级")) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _upload(client, actor, school, data: bytes, filename="roster.csv", partial=None):
    url = f"/api/v1/schools/{school.id}/students/import"
    if partial is not None:
        url += f"?partial={'true' if partial else 'false'}"
    return client.post(url, data={"file": (io.BytesIO(data), filename)}, headers=f.bearer(actor),
                       content_type="multipart/form-data")


def _students(db_session, school) -> dict[str, Student]:
    return {s.student_number: s for s in db_session.query(Student).filter_by(school_id=school.id)}


def _classes(db_session, school) -> dict[str, int]:
    return {c.name: c.grade for c in db_session.query(SchoolClass).filter_by(school_id=school.id)}


GOOD = [
    ("20250001", "张三", 3, "三年级(1)班"),
    ("20250002", "李四", "三年级", "三年级(1)班"),
    ("20250003", "王五", "4年级", "四年级(2)班"),
    ("20250004", "赵六", 4, "四年级(2)班"),
]


@pytest.fixture
def school():
    return f.school()


@pytest.fixture
def admin(school):
    return f.user("school_admin", school_=school)


def test_chinese_csv_imports_and_creates_missing_classes(client, db_session, school, admin):
    existing = f.school_class(school, grade=3, name="三年级(1)班")
    response = _upload(client, admin, school, _csv(GOOD))
    assert response.status_code == 200, response.json
    assert response.json == {"created": 4, "updated": 0, "unchanged": 0, "skipped_rows": 0, "errors": []}
    students = _students(db_session, school)
    assert set(students) == {"20250001", "20250002", "20250003", "20250004"}
    assert students["20250001"].name == "张三" and students["20250001"].class_id == existing.id
    assert students["20250002"].grade == 3
    assert students["20250003"].grade == 4 and students["20250004"].class_id == students["20250003"].class_id
    assert _classes(db_session, school) == {"三年级(1)班": 3, "四年级(2)班": 4}
    assert all(s.active for s in students.values())
    # the admin's list shows them through the API too
    listed = client.get(f"/api/v1/students?school_id={school.id}", headers=f.bearer(admin)).json
    assert listed["total"] == 4


def test_english_headers_in_any_order(client, db_session, school, admin):
    rows = [(name, number, klass, grade) for number, name, grade, klass in GOOD]
    data = _csv(rows, header=("Name", "student_number", "class", "GRADE"))
    response = _upload(client, admin, school, data)
    assert response.status_code == 200, response.json
    assert response.json["created"] == 4
    assert _students(db_session, school)["20250004"].name == "赵六"


def test_xlsx_with_numeric_cells(client, db_session, school, admin):
    rows = [(20250001, "张三", 3, "三年级(1)班"), (20250002, "李四", 5.0, "五年级(1)班"), (None, None, None, None),
            ("20250003", "王五", "初一", "初一(3)班")]
    response = _upload(client, admin, school, _xlsx(rows), filename="花名册.xlsx")
    assert response.status_code == 200, response.json
    assert response.json["created"] == 3 and response.json["errors"] == []
    students = _students(db_session, school)
    assert set(students) == {"20250001", "20250002", "20250003"}  # no "20250001.0"
    assert students["20250002"].grade == 5 and students["20250003"].grade == 7
    assert _classes(db_session, school) == {"三年级(1)班": 3, "五年级(1)班": 5, "初一(3)班": 7}


def test_gbk_csv(client, db_session, school, admin):
    data = _csv(GOOD, encoding="gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    response = _upload(client, admin, school, data)
    assert response.status_code == 200, response.json
    assert response.json["created"] == 4
    assert _students(db_session, school)["20250001"].name == "张三"
    assert "三年级(1)班" in _classes(db_session, school)


def test_utf8_bom_csv(client, db_session, school, admin):
    response = _upload(client, admin, school, b"\xef\xbb\xbf" + _csv(GOOD))
    assert response.status_code == 200, response.json
    assert response.json["created"] == 4


BAD = [
    ("20250001", "张三", 3, "三年级(1)班"),  # row 2: good
    ("20250002", "", 3, "三年级(1)班"),  # row 3: missing name
    ("20250003", "王五", 12, "十二年级(1)班"),  # row 4: grade 12
    ("20250001", "张三三", 3, "三年级(1)班"),  # row 5: number repeats row 2
    ("20250005", "钱七", 4, "三年级(1)班"),  # row 6: class is grade 3
    ("20250006", "孙八", 5, "五年级(1)班"),  # row 7: good
]


def test_bad_rows_are_all_reported_and_nothing_is_imported(client, db_session, school, admin):
    response = _upload(client, admin, school, _csv(BAD))
    error = _assert_error(response, 422, "roster_invalid")
    errors = error["details"]["errors"]
    assert all(set(e) == {"row", "column", "reason"} for e in errors)
    assert [(e["row"], e["column"]) for e in errors] == [(3, "姓名"), (4, "年级"), (5, "学号"), (6, "年级")]
    assert "第 2 行" in errors[2]["reason"]
    assert "4 行" in error["message"]
    assert _students(db_session, school) == {}
    assert _classes(db_session, school) == {}


def test_bad_rows_with_partial_import_the_good_ones(client, db_session, school, admin):
    response = _upload(client, admin, school, _csv(BAD), partial=True)
    assert response.status_code == 200, response.json
    body = response.json
    assert body["created"] == 2 and body["updated"] == 0 and body["skipped_rows"] == 4
    assert [(e["row"], e["column"]) for e in body["errors"]] == [(3, "姓名"), (4, "年级"), (5, "学号"), (6, "年级")]
    students = _students(db_session, school)
    assert set(students) == {"20250001", "20250006"}
    assert students["20250001"].name == "张三"  # the first of the duplicates
    assert _classes(db_session, school) == {"三年级(1)班": 3, "五年级(1)班": 5}


def test_class_grade_must_agree_with_an_existing_class(client, db_session, school, admin):
    f.school_class(school, grade=6, name="六(1)班")
    response = _upload(client, admin, school, _csv([("1", "甲", 5, "六(1)班")]))
    errors = _assert_error(response, 422, "roster_invalid")["details"]["errors"]
    assert errors == [{"row": 2, "column": "年级", "reason": errors[0]["reason"]}]
    assert "6" in errors[0]["reason"]


def test_reimport_is_idempotent_and_a_change_updates(client, db_session, school, admin):
    assert _upload(client, admin, school, _csv(GOOD)).json["created"] == 4
    again = _upload(client, admin, school, _csv(GOOD))
    assert again.status_code == 200
    assert again.json == {"created": 0, "updated": 0, "unchanged": 4, "skipped_rows": 0, "errors": []}
    ids = {number: s.id for number, s in _students(db_session, school).items()}

    renamed = [("20250001", "张叁", 3, "三年级(1)班"), *GOOD[1:]]
    changed = _upload(client, admin, school, _csv(renamed))
    assert changed.json["created"] == 0 and changed.json["updated"] == 1 and changed.json["unchanged"] == 3
    db_session.expire_all()
    students = _students(db_session, school)
    assert students["20250001"].name == "张叁"
    assert {number: s.id for number, s in students.items()} == ids  # same rows, upserted

    moved = [*renamed[:3], ("20250004", "赵六", 5, "五年级(1)班")]
    result = _upload(client, admin, school, _csv(moved)).json
    assert result["updated"] == 1 and result["created"] == 0
    db_session.expire_all()
    pupil = _students(db_session, school)["20250004"]
    assert pupil.grade == 5 and pupil.school_class.name == "五年级(1)班"


def test_missing_headers_are_named(client, school, admin):
    response = _upload(client, admin, school, _csv([("1", "甲", "三(1)班")], header=("学号", "姓名", "班级")))
    error = _assert_error(response, 422, "roster_headers")
    assert error["details"]["missing"] == ["年级"]


def test_empty_upload(client, school, admin):
    _assert_error(_upload(client, admin, school, b""), 400, "file_missing")
    response = client.post(f"/api/v1/schools/{school.id}/students/import", headers=f.bearer(admin))
    _assert_error(response, 400, "file_missing")


def test_raw_body_upload(client, db_session, school, admin):
    response = client.post(f"/api/v1/schools/{school.id}/students/import", data=_csv(GOOD[:1]),
                           headers={**f.bearer(admin), "Content-Type": "text/csv", "X-Filename": "r.csv"})
    assert response.status_code == 200, response.json
    assert response.json["created"] == 1


def test_damaged_xlsx_is_422(client, school, admin):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("not-a-workbook.txt", "hello")
    response = _upload(client, admin, school, buffer.getvalue(), filename="broken.xlsx")
    error = _assert_error(response, 422, "file_unreadable")
    assert "Excel" in error["message"]


def test_teacher_cannot_import(client, db_session, school):
    teacher = f.user("teacher", school_=school)
    _assert_error(_upload(client, teacher, school, _csv(GOOD)), 403, "forbidden")
    assert _students(db_session, school) == {}


def test_other_schools_admin_gets_404(client, db_session, school):
    stranger = f.user("school_admin", school_=f.school())
    _assert_error(_upload(client, stranger, school, _csv(GOOD)), 404, "not_found")
    assert _students(db_session, school) == {}


def test_import_into_one_school_leaves_another_alone(client, db_session, school, admin):
    other = f.school()
    twin = f.student(f.school_class(other, grade=3, name="三年级(1)班"), number="20250001", name="别校生")
    assert _upload(client, admin, school, _csv(GOOD)).json["created"] == 4
    db_session.expire_all()
    assert db_session.get(Student, twin.id).name == "别校生"
    assert set(_students(db_session, other)) == {"20250001"}
