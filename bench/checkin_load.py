#!/usr/bin/env python3
"""Scan throughput against a bare endpoint of the same app, measured in one run (ratios, not seconds).

    .venv/bin/python bench/checkin_load.py                     # SQLite (a temp file)
    .venv/bin/python bench/checkin_load.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench

It builds a fresh database (migrations), N students with passes, one venue-staff account and one
open lecture, starts gunicorn with several workers on 127.0.0.1, then runs wrk (Debian: `apt-get
install wrk`) twice at the same concurrency:

1. bare: GET /healthz — the same app, a constant JSON answer, no database;
2. scans: POST /api/v1/checkins, staff mode, an entry then an exit for each student (every exit
   completes a stay and appends a credit to that student's hash chain).

It prints requests/s, latency percentiles and non-2xx counts of each, the ratio scans/bare, and
checks afterwards that every stay completed once and every chain verifies. Loopback only; each run
is bounded by --duration.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import fresh_app, start_server, stop_server  # noqa: E402

LUA = r"""
-- Each wrk thread walks its own slice of the prepared bodies: a block of entries, then the exits
-- of the same students, so an exit is never sent before its entry has been answered.
local bodies = {}
local thread_count = 0
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  local nthreads = tonumber(args[2])
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == tid then table.insert(bodies, line) end
    i = i + 1
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. args[3]
  scan_path = args[4] or "/api/v1/checkins"
end

function request()
  counter = counter + 1
  local body = bodies[((counter - 1) % #bodies) + 1]
  return wrk.format(nil, scan_path, nil, body)
end

done = function(summary, latency, requests) end
"""


def build_database(url: str, students: int) -> dict:
    """Migrate a fresh database and create the pupils, the staff account and an open lecture."""
    from sqlalchemy import insert, select

    from app.auth.models import StaffVenue, User
    from app.auth.passwords import hash_password
    from app.auth.tokens import issue_tokens
    from app.extensions import db
    from app.orgs.models import District, School, SchoolClass, Student
    from app.venues import codes
    from app.venues.models import Activity, Venue

    app = fresh_app(url, ACCESS_TOKEN_MINUTES=120)
    with app.app_context():
        district = District(name="福田区", code="FT")
        db.session.add(district)
        db.session.flush()
        school = School(name="压测学校", district_id=district.id)
        db.session.add(school)
        db.session.flush()
        klass = SchoolClass(school_id=school.id, grade=7, name="七年级(1)班")
        venue = Venue(name="深圳科学技术馆", kind="science_museum", level="city", district_id=district.id)
        db.session.add_all([klass, venue])
        db.session.flush()
        now = datetime.now(UTC)
        activity = Activity(venue_id=venue.id, kind="lecture", title="压测讲座", starts_at=now - timedelta(hours=3),
                            ends_at=now + timedelta(hours=6), min_minutes=45, grades=list(range(1, 10)))
        staff = User(username="bench-staff", password_hash=hash_password("bench-password"), role="venue_staff")
        db.session.add_all([activity, staff])
        db.session.flush()
        db.session.add(StaffVenue(user_id=staff.id, venue_id=venue.id))
        db.session.execute(insert(Student), [
            {"school_id": school.id, "class_id": klass.id, "grade": 7, "student_number": f"B{i:07d}",
             "name": f"学生{i}", "active": True, "pass_version": 1} for i in range(students)
        ])
        db.session.commit()
        ids = list(db.session.scalars(select(Student.id).order_by(Student.id)))
        passes = [codes.student_pass(i, 1) for i in ids]
        token = issue_tokens(staff)["access_token"]
        return {"activity_id": activity.id, "passes": passes, "token": token, "app": app}


def write_bodies(path: Path, passes: list[str], activity_id: int, block: int, threads: int) -> int:
    """Entry/exit bodies, one line each. The first `threads` lines are lone entries of canary pupils
    (one per wrk thread): wrk drew one body per run without sending it — the first — so a real
    pupil's exit arrived without its entry (the one 422 every run used to show)."""
    now = datetime.now(UTC)
    entered, left = (now - timedelta(minutes=55)).isoformat(), (now - timedelta(minutes=5)).isoformat()
    lines = 0
    with path.open("w") as out:
        canaries, passes = passes[:threads], passes[threads:]
        for token in canaries:
            out.write(json.dumps({"student_pass": token, "activity_id": activity_id, "direction": "entry",
                                  "scanned_at": entered, "nonce": str(uuid.uuid4())}) + "\n")
            lines += 1
        for start in range(0, len(passes), block):
            chunk = passes[start:start + block]
            for direction, at in (("entry", entered), ("exit", left)):
                for token in chunk:
                    out.write(json.dumps({"student_pass": token, "activity_id": activity_id, "direction": direction,
                                          "scanned_at": at, "nonce": str(uuid.uuid4())}) + "\n")
                    lines += 1
    return lines


def parse_wrk(output: str) -> dict:
    def seconds(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
        return float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]

    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}
    for pct in ("50", "90", "99"):
        match = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", output, re.M)
        result[f"p{pct}_ms"] = seconds(match.group(1)) * 1000 if match else None
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    result["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    result["socket_errors"] = sum(map(int, errors.groups())) if errors else 0
    result["requests"] = int(re.search(r"(\d+) requests in", output).group(1))
    return result


def run_wrk(url: str, connections: int, threads: int, duration: int, script: Path | None = None,
            args: list[str] = ()) -> dict:
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--latency", url]
    if script:
        cmd[1:1] = ["-s", str(script)]
        cmd += ["--", *args]
    output = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return parse_wrk(output)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--students", type=int, default=12000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--port", type=int, default=5077)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="checkin-bench-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}"
    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"preparing {args.students} students on {backend} …", flush=True)
    data = build_database(url, args.students)
    bodies = workdir / "bodies.jsonl"
    count = write_bodies(bodies, data["passes"], data["activity_id"], block=400, threads=args.threads)
    script = workdir / "scans.lua"
    script.write_text(LUA)

    # a load test of the scan pipeline, not of the rate limiter (server_env turns it off: one staff
    # account scans 12,000 passes)
    base = f"http://127.0.0.1:{args.port}"
    server = start_server(url, args.workers, args.port)
    try:
        run_wrk(f"{base}/healthz", args.connections, args.threads, 3)  # warm-up
        bare = run_wrk(f"{base}/healthz", args.connections, args.threads, args.duration)
        max_requests = count  # never wrap around: every body is sent at most once
        duration = args.duration
        scans = run_wrk(base, args.connections, args.threads, duration, script,
                        [str(bodies), str(args.threads), data["token"]])
        if scans["requests"] > max_requests:
            print("warning: the run sent more requests than prepared bodies; raise --students", file=sys.stderr)
    finally:
        stop_server(server)

    with data["app"].app_context():
        from sqlalchemy import func, select

        from app.checkins.models import Checkin
        from app.credits.ledger import verify_all
        from app.credits.models import LedgerEntry
        from app.extensions import db

        completed = db.session.scalar(select(func.count()).select_from(Checkin).where(Checkin.status == "completed"))
        entries = db.session.scalar(select(func.count()).select_from(LedgerEntry))
        chains = list(verify_all())
        broken = sum(not r.ok for r in chains)

    ratio = scans["rps"] / bare["rps"]
    print()
    print(f"checkin_load on {backend}: gunicorn {args.workers} workers, wrk {args.connections} connections, "
          f"{args.duration}s per run, {os.cpu_count()} CPUs")
    print(f"{'endpoint':<28}{'req/s':>10}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'non-2xx':>10}{'sock err':>10}")
    for name, r in (("bare GET /healthz", bare), ("scan POST /api/v1/checkins", scans)):
        print(f"{name:<28}{r['rps']:>10.0f}{r['p50_ms']:>10.2f}{r['p90_ms']:>10.2f}{r['p99_ms']:>10.2f}"
              f"{r['non_2xx']:>10}{r['socket_errors']:>10}")
    print(f"ratio scans/bare: {ratio:.2f}")
    print(f"after the run: {completed} completed stays, {entries} ledger entries, {len(chains)} chains, "
          f"{broken} broken")
    target = 0.25 if backend == "PostgreSQL" else 0.35
    ok = (ratio >= target and scans["p99_ms"] <= 50 and scans["non_2xx"] == 0 and scans["socket_errors"] == 0
          and broken == 0 and completed == entries)
    print(f"targets (ratio ≥ {target}, p99 ≤ 50 ms, 0 errors, chains ok): {'MET' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
