"""The scan's statements find their rows by an index that names the pupil (or the row's key): none
reads a whole table, or every stay of an activity, and none sorts in a temporary B-tree.

SQLite plans without statistics (nothing runs ANALYZE), so its choice among indexes is fixed by
the schema: an exit scan once searched checkins by activity_id, reading every stay ever made at
that activity on every exit. PostgreSQL chooses by its statistics; the same indexes serve it.
"""

from __future__ import annotations

import pytest

from app.auth.scope import _USER_ROW
from app.checkins import service
from app.credits import ledger
from app.credits.service import _STAY_HISTORY_AND_HEAD
from app.extensions import db
from tests.conftest import IS_POSTGRES

pytestmark = pytest.mark.skipif(IS_POSTGRES, reason="SQLite's planner (PostgreSQL plans by its statistics)")

HOT = {
    "caller": _USER_ROW,
    "activity": service._ACTIVITY,
    "staff's activity": service._STAFF_ACTIVITY,
    "pupil, locked, with the term and rules facts": service._LOCK_STUDENT_AND_FACTS,
    "replay": service._REPLAY,
    "open stays (entry)": service._OPEN_STAYS,
    "the stay an exit closes": service._EXIT_CANDIDATE,
    "caps' history and chain head (exit)": _STAY_HISTORY_AND_HEAD,
    "chain head": ledger._HEAD,
}
SMALL_TABLES = {"rule_versions"}  # a handful of rows, one per rule set ever loaded


def plan_of(prepared) -> list[str]:
    connection = db.session.connection()
    sql = prepared._plan(connection.dialect).sql
    rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, (1,) * sql.count("?")).all()
    return [row[3] for row in rows]


@pytest.mark.parametrize("name", HOT)
def test_no_full_scan_and_no_sort(name):
    plan = plan_of(HOT[name])
    scans = [step for step in plan if step.startswith("SCAN ") and step.split()[1] not in SMALL_TABLES]
    assert not scans, plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


def test_exit_finds_the_stay_by_pupil_and_activity():
    assert plan_of(service._EXIT_CANDIDATE) == [
        "SEARCH checkins USING INDEX ix_checkins_student_activity (student_id=? AND activity_id=? AND entered_at<?)"
    ]
