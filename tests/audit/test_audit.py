"""The audit trail: every staff read of a child's data is written once; the pupil's own and their
guardian's reads are not; the trail is paged, scoped, and append-only."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from app.audit.models import AuditEntry
from app.audit.service import record_read
from tests import factories as f
from tests.transcripts.conftest import YEAR, get

READS = {  # route (after /api/v1/students/{id}) → action written
    "": "student",
    "/ledger": "ledger",
    "/ledger/verify": "ledger_verify",
    f"/transcript?school_year={YEAR}": "transcript",
    f"/transcript?school_year={YEAR}&format=pdf": "transcript_pdf",
    "/pass": "pass",
    "/pass.png": "pass_png",
    "/checkins": "checkins",
}


def entries(db_session, **where):
    query = select(AuditEntry).order_by(AuditEntry.id)
    for name, value in where.items():
        query = query.where(getattr(AuditEntry, name) == value)
    return db_session.scalars(query).all()


@pytest.mark.parametrize("reader", ["teacher", "school_admin", "admin"])
def test_every_staff_read_of_a_child_is_written_once(client, school, db_session, reader):
    pupil = school["ming"]
    staff = {"teacher": school["teacher"], "school_admin": school["admin"]}.get(reader) or f.user("admin")
    for suffix, _action in READS.items():
        res = get(client, staff, f"/api/v1/students/{pupil.id}{suffix}")
        assert res.status_code == 200, (suffix, res.status_code)
    rows = entries(db_session, student_id=pupil.id)
    assert [r.action for r in rows] == list(READS.values())
    assert {(r.actor_id, r.actor_role) for r in rows} == {(staff.id, reader)}
    assert [r.route for r in rows] == [f"GET /api/v1/students/{pupil.id}{s.split('?')[0]}" for s in READS]
    assert all(r.at is not None and r.address for r in rows)


def test_the_pupil_and_their_own_guardian_leave_no_trace(client, school, db_session):
    pupil = school["ming"]
    for account in (school["student"], school["parent"]):
        for suffix in READS:
            assert get(client, account, f"/api/v1/students/{pupil.id}{suffix}").status_code == 200, suffix
        assert get(client, account, "/api/v1/me").status_code == 200
    assert get(client, school["parent"], f"/api/v1/me/children?school_year={YEAR}").status_code == 200
    assert entries(db_session) == []
    # Another guardian of the same child is their own guardian too; a refused read writes nothing.
    assert get(client, school["other_parent"], f"/api/v1/students/{pupil.id}/ledger").status_code == 404
    assert entries(db_session) == []


def test_progress_reads_write_one_entry_per_pupil(client, school, db_session):
    klass = school["class"]
    assert get(client, school["teacher"], f"/api/v1/classes/{klass.id}/progress?school_year={YEAR}").status_code == 200
    rows = entries(db_session)
    assert sorted(r.student_id for r in rows) == sorted([school["ming"].id, school["hua"].id])
    assert {r.action for r in rows} == {"progress"}
    assert {r.route for r in rows} == {f"GET /api/v1/classes/{klass.id}/progress"}
    get(client, school["teacher"], f"/api/v1/classes/{klass.id}/progress?format=xlsx")
    assert len(entries(db_session, action="progress_xlsx")) == 2
    get(client, school["admin"], f"/api/v1/schools/{school['school'].id}/progress.xlsx")
    exported = entries(db_session, action="progress_export")
    assert sorted(r.student_id for r in exported) == sorted(s.id for s in (school["ming"], school["hua"], school["older"]))


def test_audit_endpoint_is_paged_and_scoped(client, school, db_session):
    pupil, outsider = school["ming"], f.student()
    outsider_admin = f.user("admin")
    for _ in range(3):
        get(client, school["teacher"], f"/api/v1/students/{pupil.id}/ledger")
    get(client, outsider_admin, f"/api/v1/students/{outsider.id}/ledger")
    res = get(client, school["admin"], f"/api/v1/audit?student_id={pupil.id}&per_page=2")
    assert res.status_code == 200
    page = res.json
    assert (page["total"], page["page"], page["per_page"], len(page["items"])) == (3, 1, 2, 2)
    item = page["items"][0]
    assert item["actor_id"] == school["teacher"].id and item["actor_username"] == school["teacher"].username
    assert item["actor_role"] == "teacher" and item["student_id"] == pupil.id and item["action"] == "ledger"
    assert item["route"] == f"GET /api/v1/students/{pupil.id}/ledger" and item["at"].endswith("+08:00")
    assert len(get(client, school["admin"], f"/api/v1/audit?student_id={pupil.id}&page=2&per_page=2").json["items"]) == 1
    # A school admin sees only their own pupils; another school's pupil is 404.
    assert {i["student_id"] for i in get(client, school["admin"], "/api/v1/audit").json["items"]} == {pupil.id}
    assert get(client, school["admin"], f"/api/v1/audit?student_id={outsider.id}").status_code == 404
    assert get(client, school["other_admin"], f"/api/v1/audit?student_id={pupil.id}").status_code == 404
    assert get(client, school["other_admin"], "/api/v1/audit").json["total"] == 0
    # An admin sees everything, filterable by actor.
    everything = get(client, outsider_admin, "/api/v1/audit").json
    assert everything["total"] == 4
    assert get(client, outsider_admin, f"/api/v1/audit?actor_id={outsider_admin.id}").json["total"] == 1
    for role in ("teacher", "parent", "student"):
        assert get(client, school[role], "/api/v1/audit").status_code == 403
    officer = f.user("district_officer", district_=school["school"].district)
    assert get(client, officer, "/api/v1/audit").status_code == 403


def test_record_read_rules(app, school, db_session):
    pupil = school["ming"]
    with app.test_request_context("/api/v1/students/1/ledger", method="GET", environ_base={"REMOTE_ADDR": "10.1.2.3"}):
        assert record_read(school["student"], pupil, "ledger") is False
        assert record_read(school["parent"], pupil, "ledger") is False
        assert record_read(f.student_user(school["hua"]), pupil, "ledger") is True  # another pupil: recorded
        assert record_read(school["teacher"], pupil, "ledger") is True
    rows = entries(db_session)
    assert [r.address for r in rows] == ["10.1.2.3", "10.1.2.3"]
    assert rows[-1].route == "GET /api/v1/students/1/ledger"


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET action = 'nothing'", "DELETE FROM audit_log"])
def test_the_log_is_append_only(client, school, db_session, statement):
    get(client, school["teacher"], f"/api/v1/students/{school['ming'].id}/ledger")
    before = [(r.id, r.action) for r in entries(db_session)]
    assert before
    savepoint = db_session.begin_nested()
    with pytest.raises(Exception, match="append-only"):
        db_session.execute(text(statement))
    savepoint.rollback()
    db_session.expire_all()
    assert [(r.id, r.action) for r in entries(db_session)] == before


@pytest.mark.committed  # its own app on its own SQLite file: no rolled-back test transaction
def test_audited_reads_survive_concurrent_writes_on_sqlite(tmp_path):
    """A GET that writes its audit row must not fail when another connection wrote meanwhile (SQLite
    refuses to turn a stale read transaction into a write: the row is written in a fresh one)."""
    import threading
    import time

    from flask_migrate import upgrade

    from app import create_app
    from app.auth.models import TeacherClass, User
    from app.auth.tokens import issue_tokens
    from app.db import utcnow
    from app.extensions import db
    from app.orgs.models import District, School, SchoolClass, Student
    from tests.conftest import TestConfig

    class Config(TestConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'race.sqlite3'}"

    app = create_app(Config)
    with app.app_context():
        upgrade()
        district = District(name="区", code="RACE")
        db.session.add(district)
        db.session.flush()
        school = School(name="学校", district_id=district.id)
        db.session.add(school)
        db.session.flush()
        klass = SchoolClass(school_id=school.id, grade=5, name="五(1)班")
        db.session.add(klass)
        db.session.flush()
        pupil = Student(school_id=school.id, class_id=klass.id, grade=5, student_number="1", name="甲", pass_version=1)
        teacher = User(username="t", password_hash="x", role="teacher", school_id=school.id)
        db.session.add_all([pupil, teacher])
        db.session.flush()
        db.session.add(TeacherClass(user_id=teacher.id, class_id=klass.id))
        db.session.commit()
        pupil_id, teacher_id = pupil.id, teacher.id
        headers = {"Authorization": f"Bearer {issue_tokens(teacher)['access_token']}"}
        db.session.remove()

    stop = time.monotonic() + 2
    statuses: list[int] = []

    def writer():
        with app.app_context():
            while time.monotonic() < stop:
                db.session.add(AuditEntry(actor_id=teacher_id, actor_role="teacher", student_id=pupil_id,
                                          action="other", route="GET /x", at=utcnow()))
                db.session.commit()
            db.session.remove()

    def reader():
        client = app.test_client()
        while time.monotonic() < stop:
            statuses.append(client.get(f"/api/v1/students/{pupil_id}/ledger", headers=headers).status_code)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses and set(statuses) == {200}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "ledger")) \
            == len(statuses)
        db.session.remove()
        db.engine.dispose()
