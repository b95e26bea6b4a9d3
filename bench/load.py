#!/usr/bin/env python3
"""A Monday-morning mix against gunicorn on 127.0.0.1: throughput, latency, errors and worker memory.

    .venv/bin/python bench/load.py                                  # SQLite
    .venv/bin/python bench/load.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_load
    bench/load.sh                                                   # both, where PostgreSQL answers

Mix (by request): scans 60 % (a staff device's entry and exit passes), transcripts 25 % (teachers
reading pupils' transcripts), class progress 10 %, bureau statistics 5 %. wrk (`apt-get install
wrk`) drives it for a bounded number of requests (--requests, default 100,000, split into two
halves); worker RSS is read from /proc after each half, so growth in the second half shows.
Only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.checkin_load import parse_wrk, wait_until_up  # noqa: E402
from bench.common import fresh_app, server_env  # noqa: E402

LUA = r"""
-- Requests are prepared lines "METHOD TOKEN PATH BODY"; each wrk thread walks its own slice, in
-- order, so a pupil's exit scan always follows the entry that was sent long before it.
local lines = {}
local counter = 0
local tid_counter = 0
function setup(thread)
  thread:set("tid", tid_counter)
  tid_counter = tid_counter + 1
end

function init(args)
  local nthreads = tonumber(args[2])
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == tid then table.insert(lines, line) end
    i = i + 1
  end
end

function request()
  counter = counter + 1
  local line = lines[((counter - 1) % #lines) + 1]
  local method, token, path, body = line:match("^(%S+) (%S+) (%S+) ?(.*)$")
  local headers = {["Authorization"] = "Bearer " .. token}
  if method == "POST" then
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", path, headers, body)
  end
  return wrk.format("GET", path, headers, nil)
end
"""


def prepare(url: str, pupils: int) -> dict:
    """A migrated database with one school of `pupils` in 20 classes, a venue, staff and readers."""
    from sqlalchemy import insert, select

    from app.auth.models import StaffVenue, TeacherClass, User
    from app.auth.passwords import hash_password
    from app.auth.tokens import issue_tokens
    from app.extensions import db
    from app.orgs.models import District, School, SchoolClass, Student
    from app.venues import codes
    from app.venues.models import Activity, Venue

    app = fresh_app(url, ACCESS_TOKEN_MINUTES=240)
    with app.app_context():
        district = District(name="南山区", code="NS")
        db.session.add(district)
        db.session.flush()
        school = School(name="负载测试学校", district_id=district.id)
        venue = Venue(name="深圳科学技术馆", kind="science_museum", level="city", district_id=district.id)
        db.session.add_all([school, venue])
        db.session.flush()
        classes = [SchoolClass(school_id=school.id, grade=3 + i % 6, name=f"{3 + i % 6}年级({i})班") for i in range(20)]
        db.session.add_all(classes)
        now = datetime.now(UTC)
        activity = Activity(venue_id=venue.id, kind="lecture", title="负载测试讲座", starts_at=now - timedelta(hours=4),
                            ends_at=now + timedelta(hours=8), min_minutes=45, grades=list(range(1, 10)))
        hashed = hash_password("bench-password")
        staff = User(username="bench-staff", password_hash=hashed, role="venue_staff")
        admin = User(username="bench-admin", password_hash=hashed, role="school_admin", school_id=school.id)
        teacher = User(username="bench-teacher", password_hash=hashed, role="teacher", school_id=school.id)
        city = User(username="bench-city", password_hash=hashed, role="city_officer")
        db.session.add_all([activity, staff, admin, teacher, city])
        db.session.flush()
        db.session.add(StaffVenue(user_id=staff.id, venue_id=venue.id))
        db.session.add_all([TeacherClass(user_id=teacher.id, class_id=c.id) for c in classes])
        db.session.execute(insert(Student), [
            {"school_id": school.id, "class_id": classes[i % 20].id, "grade": classes[i % 20].grade,
             "student_number": f"L{i:07d}", "name": f"学生{i}", "active": True, "pass_version": 1}
            for i in range(pupils)
        ])
        db.session.commit()
        ids = list(db.session.scalars(select(Student.id).order_by(Student.id)))
        return {
            "app": app, "activity": activity.id, "classes": [c.id for c in classes], "students": ids,
            "passes": [codes.student_pass(i, 1) for i in ids],
            "tokens": {name: issue_tokens(user)["access_token"]
                       for name, user in (("staff", staff), ("admin", admin), ("teacher", teacher), ("city", city))},
        }


def write_requests(path: Path, data: dict, count: int, passes: list[str]) -> None:
    """`count` request lines in the Monday mix (60/25/10/5), scans as entry/exit blocks of `passes`."""
    now = datetime.now(UTC)
    entered, left = (now - timedelta(minutes=55)).isoformat(), (now - timedelta(minutes=5)).isoformat()
    tokens, year = data["tokens"], "2026-2027"
    scans = []
    for start in range(0, len(passes), 200):
        block = passes[start:start + 200]
        for direction, at in (("entry", entered), ("exit", left)):
            for token in block:
                body = json.dumps({"student_pass": token, "activity_id": data["activity"], "direction": direction,
                                   "scanned_at": at, "nonce": str(uuid.uuid4())}, separators=(",", ":"))
                scans.append(f"POST {tokens['staff']} /api/v1/checkins {body}")
    students, classes = data["students"], data["classes"]
    lines, s = [], 0
    for i in range(count):
        slot = i % 20  # 12 scans, 5 transcripts, 2 class progress, 1 stats in every 20 requests
        if slot < 12:
            lines.append(scans[s % len(scans)])
            s += 1
        elif slot < 17:
            lines.append(f"GET {tokens['admin']} /api/v1/students/{students[i % len(students)]}/transcript"
                         f"?school_year={year}")
        elif slot < 19:
            lines.append(f"GET {tokens['teacher']} /api/v1/classes/{classes[i % len(classes)]}/progress")
        else:
            dims = ("grade", "month", "activity_kind")[i % 3]
            lines.append(f"GET {tokens['city']} /api/v1/stats/credits?school_year={year}&group_by={dims}")
    path.write_text("\n".join(lines) + "\n")


def worker_rss_mb(master_pid: int) -> list[float]:
    out = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True).stdout.split()
    sizes = []
    for pid in out:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
        sizes.append(kb / 1024)
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--pupils", type=int, default=40_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--port", type=int, default=5078)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="load-bench-"))
    url = args.database_url or f"sqlite:///{work / 'load.sqlite3'}"
    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"preparing {args.pupils} pupils on {backend} …", flush=True)
    data = prepare(url, args.pupils)
    halves = []
    for half in range(2):
        path = work / f"half{half}.txt"
        # each half scans its own pupils: a pupil's visit is one entry and one exit
        share = len(data["passes"]) // 2
        write_requests(path, data, args.requests // 2, data["passes"][half * share:(half + 1) * share])
        halves.append(path)
    (work / "mix.lua").write_text(LUA)
    env = {**server_env(url, args.workers), "GUNICORN_MAX_REQUESTS": "0"}
    server = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), "-c", str(ROOT / "config/gunicorn.py"), "--bind",
                               f"127.0.0.1:{args.port}", "wsgi:app"], cwd=ROOT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{args.port}"
    results, rss = [], []
    try:
        wait_until_up(base)
        for path in halves:
            # wrk runs by time; run in slices until this half's requests have been sent
            sent, started = 0, time.time()
            merged = None
            while sent < args.requests // 2:
                r = subprocess.run(["wrk", "-t", "2", "-c", str(args.connections), "-d", "10s", "--latency",
                                    "-s", str(work / "mix.lua"), base, "--", str(path), "2"],
                                   capture_output=True, text=True, check=True)
                part = parse_wrk(r.stdout)
                sent += part["requests"]
                merged = part if merged is None else {
                    **part, "requests": merged["requests"] + part["requests"],
                    "non_2xx": merged["non_2xx"] + part["non_2xx"],
                    "socket_errors": merged["socket_errors"] + part["socket_errors"],
                    "p50_ms": max(merged["p50_ms"], part["p50_ms"]), "p99_ms": max(merged["p99_ms"], part["p99_ms"]),
                }
            merged["rps"] = sent / (time.time() - started)
            results.append(merged)
            rss.append(worker_rss_mb(server.pid))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    print(f"\nload mix on {backend}: gunicorn {args.workers} workers, {args.connections} connections, "
          f"{args.requests} requests in two halves")
    print(f"{'half':<6}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'worker RSS MB':>22}")
    for i, (r, sizes) in enumerate(zip(results, rss, strict=True), 1):
        print(f"{i:<6}{r['requests']:>10}{r['rps']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['non_2xx']:>9}"
              f"{', '.join(f'{s:.0f}' for s in sizes):>22}")
    growth = max(rss[1]) - max(rss[0])
    print(f"largest worker: {max(rss[1]):.0f} MB (target ≤ 150), growth in the second half: {growth:+.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
