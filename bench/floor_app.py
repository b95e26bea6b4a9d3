"""The same app plus one benchmark-only route: a scan with no glue at all (bench/scan_floor.py).

    gunicorn -c config/gunicorn.py bench.floor_app:app      (scan_floor.py starts it)

POST /bench/floor-scan takes the body bench/checkin_load.py sends (staff mode: a pass, an
activity, a direction, scanned_at, a nonce) and does only what no implementation of a scan can
skip: verify the access token and the pass, then run the statements of app/checkins/service.py —
the very SQL the real scan runs, with the same type processors — on one DBAPI connection kept by
the process, with a bare BEGIN/COMMIT; hash the ledger entry and answer JSON. No SQLAlchemy
session, Connection, pool checkout or Result; no marshmallow, no role check, no rule engine, no
refusal paths, no replay answers, no error handling beyond a 500. It is not a scan anyone may use:
it trusts its input, and it exists so that a benchmark can measure the fastest a scan could be
in this stack (Flask, the app's request hooks, sqlite3 or psycopg) — the ceiling of the ratio.

The module refuses to load unless BENCH_FLOOR=1 is set, so it cannot be served by accident.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from datetime import datetime
from decimal import Decimal

from flask import jsonify, request
from sqlalchemy import insert

from app import create_app
from app.auth.scope import _USER_ROW
from app.auth.tokens import decode
from app.checkins import service
from app.checkins.models import Checkin, Scan
from app.credits import ledger
from app.credits.models import LedgerEntry
from app.credits.rules import local_date, school_year_of, stay_minutes, term_of
from app.credits.service import _STAY_HISTORY_AND_HEAD, _history_params
from app.db import _UNKNOWN, Prepared, utcnow
from app.extensions import db
from app.venues import codes

if os.environ.get("BENCH_FLOOR") != "1":
    raise SystemExit("bench/floor_app.py is a benchmark instrument: set BENCH_FLOOR=1 to serve it")

app = create_app()
_connection = None  # this worker's own DBAPI connection, opened at its first request (after the fork)


def _raw():
    global _connection
    if _connection is None:
        with app.app_context():
            _connection = db.engine.raw_connection().driver_connection
    return _connection


def _send(connection, dialect, prepared, params):
    """Execute one statement (in pipeline mode: queue it); returns (cursor, plan) for _rows."""
    plan = prepared._plan(dialect)
    cursor = connection.cursor()
    cursor.execute(plan.sql, plan.arguments(params))
    return cursor, plan


def _rows(sent) -> list:
    """A statement's rows through app.db's type processors (in pipeline mode: once synced)."""
    cursor, plan = sent
    try:
        if not plan.returns_rows:
            return []
        rows = cursor.fetchall()
        if plan.result_processors is _UNKNOWN:
            plan.learn_result_types(cursor.description)
        return plan.make_rows(rows)
    finally:
        cursor.close()


def _run(connection, dialect, prepared, params) -> list:
    return _rows(_send(connection, dialect, prepared, params))


@app.post("/bench/floor-scan")
def floor_scan():
    try:
        return _floor_scan()
    except BaseException:
        _raw().rollback()  # the connection outlives the request: never leave it inside a transaction
        raise


@app.post("/bench/floor-scan-pipelined")
def floor_scan_pipelined():
    try:
        return _floor_scan_pipelined()
    except BaseException:
        _raw().rollback()
        raise


def _received():
    """What any scan must do first: the caller's token, the body, the pass's signature, the clock."""
    claims = decode(request.headers["Authorization"].partition(" ")[2], "access")
    body = request.get_json()
    student_id, _version = codes.verify_pass(body["student_pass"])
    now = utcnow()
    return int(claims["sub"]), body, student_id, now, min(datetime.fromisoformat(body["scanned_at"]), now)


def _floor_scan():
    actor_id, body, student_id, now, when = _received()
    connection = _raw()
    dialect = db.engine.dialect
    sqlite = dialect.name == "sqlite"
    actor = _run(connection, dialect, _USER_ROW, {"user_id": actor_id})[0]
    activity = _run(connection, dialect, service._STAFF_ACTIVITY,
                    {"activity_id": body["activity_id"], "user_id": actor.id})[0]
    day = local_date(when)
    params = {"student_id": student_id, "school_year": school_year_of(day), "term": term_of(day)}
    if sqlite:
        connection.acquire_write_lock()
        connection.execute("BEGIN IMMEDIATE")
        student = _run(connection, dialect, service._LOCK_STUDENT_AND_FACTS, params)[0]
    else:
        student = _run(connection, dialect, service._LOCK_STUDENT, params)[0]
        facts = _run(connection, dialect, service._STUDENT_FACTS, {**params, "school_id": student.school_id})[0]
    _run(connection, dialect, service._REPLAY, {"actor_id": actor.id, "nonce": body["nonce"]})
    credit = None
    if body["direction"] == "entry":
        deadline = service.deadline_of(activity, when)
        stays = _run(connection, dialect, service._OPEN_STAYS, {"student_id": student.id})
        stay_id = _run(connection, dialect, service._INSERT_CHECKIN, {
            "student_id": student.id, "activity_id": activity.id, "venue_id": activity.venue_id,
            "entered_at": when, "deadline": deadline, "source": "staff", "device_id": None, "status": "open",
            "flags": [], "created_by": actor.id, "created_at": now})[0][0]
        stay = {"id": stay_id, "entered_at": when, "exited_at": None, "minutes": None, "open": len(stays)}
    else:
        row = _run(connection, dialect, service._EXIT_CANDIDATE,
                   {"student_id": student.id, "activity_id": activity.id, "when": when})[0]
        minutes = stay_minutes(row.entered_at, when)
        _run(connection, dialect, service._CLOSE_STAY, {"stay_id": row.id, "exited_at": when, "minutes": minutes,
                                                       "exit_source": "staff", "status": "completed"})
        history = _run(connection, dialect, _STAY_HISTORY_AND_HEAD,
                       _history_params(student.id, activity.venue_id, row.entered_at))[0]
        rule_version = (student if sqlite else facts).rule_version
        fields = _entry_fields(student, activity, row, history, params, minutes, rule_version, actor.id, now)
        entry_id = _run(connection, dialect, ledger._INSERT, fields)[0][0]
        credit = {"amount": "1.00", "entry_id": entry_id, "seq": fields["seq"], "explanation": fields["explanation"]}
        stay = {"id": row.id, "entered_at": row.entered_at, "exited_at": when, "minutes": minutes}
    answer = _answer(stay, student, activity, credit)
    _run(connection, dialect, service._INSERT_SCAN,
         _scan_fields(body, actor.id, student.id, activity.id, stay["id"], when, now, answer))
    connection.commit()
    return jsonify(answer), 201


def _entry_fields(student, activity, row, history, params, minutes, rule_version, actor_id, now) -> dict:
    """The ledger entry of a stay, hashed as app.credits.ledger hashes (a fixed 1.00: no rules)."""
    fields = {
        "student_id": student.id, "seq": (history.head_seq or 0) + 1, "kind": "credit",
        "amount": Decimal("1.00"), "activity_kind": activity.kind, "competition": None, "source": "checkin",
        "source_id": row.id, "unique_key": f"checkin:{row.id}", "reverses_id": None,
        "venue_id": activity.venue_id, "occurred_at": row.entered_at, "school_year": params["school_year"],
        "term": params["term"], "rule_version": rule_version,
        "explanation": {"summary": f"{activity.title} {minutes} 分钟", "base": "1.00", "multiplier": "1.0",
                        "checkin": {"id": row.id, "activity_title": activity.title, "venue_name": activity.name}},
        "created_at": now, "created_by": actor_id, "prev_hash": history.head_hash or "0" * 64,
    }
    wire = {k: (f"{v:.2f}" if isinstance(v, Decimal) else v.isoformat() if isinstance(v, datetime) else v)
            for k, v in fields.items()}
    fields["hash"] = hashlib.sha256(json.dumps(wire, sort_keys=True, separators=(",", ":"),
                                               ensure_ascii=False).encode()).hexdigest()
    return fields


def _answer(stay: dict, student, activity, credit) -> dict:
    return {"checkin": {**{k: v.isoformat() if isinstance(v, datetime) else v for k, v in stay.items()},
                        "student_id": student.id, "activity_id": activity.id, "activity_title": activity.title,
                        "venue_name": activity.name, "status": "completed" if credit else "open"},
            "credit": credit, "replayed": False}


def _scan_fields(body, actor_id, student_id, activity_id, checkin_id, when, now, answer) -> dict:
    return {"actor_id": actor_id, "nonce": body.get("nonce") or uuid.uuid4().hex,
            "request_hash": service.request_hash(body), "source": "staff", "direction": body["direction"],
            "student_id": student_id, "activity_id": activity_id, "checkin_id": checkin_id, "device_id": None,
            "scanned_at": when, "received_at": now, "successful": True, "reason": None, "response_status": 201,
            "response_body": answer}


# --- PostgreSQL: the same statements in three round trips ------------------------------------------
# psycopg's pipeline mode sends several statements before reading any answer. Reads that depend on
# nothing but the request go together, ids come from the sequences in the same trip, and the writes
# go with the COMMIT: three round trips instead of eleven. (A real scan could not read the stay's
# history before the stay itself; here the history is asked for the scan's own day.)

_LEDGER_WITH_ID = Prepared(insert(LedgerEntry.__table__), keys=("id", *ledger._COLUMNS))
_CHECKIN_WITH_ID = Prepared(insert(Checkin.__table__), keys=("id", *service._INSERT_CHECKIN.keys))
_INSERT_SCAN_NO_ID = Prepared(insert(Scan.__table__), keys=service._INSERT_SCAN.keys)
_NEXT_IDS = "SELECT nextval('ledger_entries_id_seq'), nextval('checkins_id_seq')"


def _floor_scan_pipelined():
    actor_id, body, student_id, now, when = _received()
    connection = _raw()
    dialect = db.engine.dialect
    day = local_date(when)
    params = {"student_id": student_id, "school_year": school_year_of(day), "term": term_of(day)}
    exit_ = body["direction"] == "exit"
    with connection.pipeline():
        sent_user = _send(connection, dialect, _USER_ROW, {"user_id": actor_id})
        sent_activity = _send(connection, dialect, service._STAFF_ACTIVITY,
                              {"activity_id": body["activity_id"], "user_id": actor_id})
        actor, activity = _rows(sent_user)[0], _rows(sent_activity)[0]
    with connection.pipeline():
        # the pupil's row lock, then (a statement of its own, so it sees what committed while it
        # waited) the pupil with the term and rules facts, as the real scan reads them
        _send(connection, dialect, service._LOCK_STUDENT, params)
        sent_student = _send(connection, dialect, service._LOCK_STUDENT_AND_FACTS, params)
        _send(connection, dialect, service._REPLAY, {"actor_id": actor.id, "nonce": body["nonce"]})
        if exit_:
            sent_stay = _send(connection, dialect, service._EXIT_CANDIDATE,
                              {"student_id": student_id, "activity_id": activity.id, "when": when})
            sent_history = _send(connection, dialect, _STAY_HISTORY_AND_HEAD,
                                 _history_params(student_id, activity.venue_id, when))
        else:
            sent_stay = _send(connection, dialect, service._OPEN_STAYS, {"student_id": student_id})
        ids = connection.cursor()
        ids.execute(_NEXT_IDS)
        student = _rows(sent_student)[0]
        stays = _rows(sent_stay)
        entry_id, checkin_id = ids.fetchone()
        history = _rows(sent_history)[0] if exit_ else None
    credit = None
    with connection.pipeline():
        if not exit_:
            stay = {"id": checkin_id, "entered_at": when, "exited_at": None, "minutes": None, "open": len(stays)}
            _send(connection, dialect, _CHECKIN_WITH_ID, {
                "id": checkin_id, "student_id": student.id, "activity_id": activity.id, "venue_id": activity.venue_id,
                "entered_at": when, "deadline": service.deadline_of(activity, when), "source": "staff",
                "device_id": None, "status": "open", "flags": [], "created_by": actor.id, "created_at": now})
        else:
            row = stays[0]
            minutes = stay_minutes(row.entered_at, when)
            _send(connection, dialect, service._CLOSE_STAY, {"stay_id": row.id, "exited_at": when, "minutes": minutes,
                                                            "exit_source": "staff", "status": "completed"})
            fields = _entry_fields(student, activity, row, history, params, minutes, student.rule_version, actor.id,
                                   now)
            _send(connection, dialect, _LEDGER_WITH_ID, {"id": entry_id, **fields})
            credit = {"amount": "1.00", "entry_id": entry_id, "seq": fields["seq"],
                      "explanation": fields["explanation"]}
            stay = {"id": row.id, "entered_at": row.entered_at, "exited_at": when, "minutes": minutes}
        answer = _answer(stay, student, activity, credit)
        _send(connection, dialect, _INSERT_SCAN_NO_ID, _scan_fields(body, actor.id, student.id, activity.id, stay["id"],
                                                                    when, now, answer))
        connection.commit()
    return jsonify(answer), 201
