"""Recording reads of children's personal data (SPEC §2): who read whose record, how and when.

Every route that shows a pupil's ledger, transcript, pass, check-in history, record or progress row
calls `record_read` once per pupil, after the scope check and before the data is sent (right after
the check, or once the answer is assembled): no data leaves without its trace. A pupil reading their own record and
a guardian reading their own child's are not recorded; every other reader is (teachers, school
admins, admins). The entry is committed at once: a read that fails later still leaves its trace, and
a route cannot forget to commit it (anything the route wrote before is committed with it). The table refuses UPDATE and DELETE (migration 0004).
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import has_request_context, request
from sqlalchemy import insert, select

from app.audit.models import AuditEntry
from app.auth.models import User
from app.db import utcnow
from app.extensions import db
from app.orgs.models import GuardianLink, Student


def _route() -> tuple[str, str | None]:
    if not has_request_context():
        return "cli", None
    return f"{request.method} {request.path}"[:200], (request.remote_addr or None)


def _exempt_ids(user: User, student_ids: list[int]) -> set[int]:
    """The pupils whose reads by `user` are not recorded: themself, or their own children."""
    if user.role == "student":
        return {user.student_id} if user.student_id in student_ids else set()
    if user.role == "guardian":
        return set(db.session.scalars(
            select(GuardianLink.student_id).where(GuardianLink.guardian_id == user.id,
                                                  GuardianLink.student_id.in_(student_ids))
        ))
    return set()


def record_reads(user: User, student_ids: Iterable[int], action: str) -> int:
    """Record that `user` read the personal data of each of `student_ids` (one entry per pupil) and
    commit; returns the number of entries written."""
    ids = list(dict.fromkeys(student_ids))
    if not ids:
        return 0
    exempt = _exempt_ids(user, ids)
    route, address = _route()
    now = utcnow()
    rows = [
        {"actor_id": user.id, "actor_role": user.role, "student_id": sid, "action": action[:64], "route": route,
         "address": address, "at": now}
        for sid in ids if sid not in exempt
    ]
    if rows:
        # End the reading transaction first, so the insert opens the next one: on SQLite a read
        # transaction that turns into a write fails at once (SQLITE_BUSY_SNAPSHOT) if another
        # process wrote meanwhile, whereas a transaction that starts by writing waits its turn.
        db.session.commit()
        db.session.execute(insert(AuditEntry), rows)
        db.session.commit()
    return len(rows)


def record_read(user: User, student: Student, action: str) -> bool:
    """Record one read of `student`'s personal data by `user` (skipped for the pupil themself and
    their own guardians) and commit; True when an entry was written."""
    return record_reads(user, [student.id], action) == 1
