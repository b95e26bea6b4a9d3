#!/usr/bin/env python3
"""A Monday-morning mix against gunicorn on 127.0.0.1: throughput, latency per route, errors and
worker memory over a run bounded by request count.

    .venv/bin/python bench/load.py                                  # SQLite, 100,000 requests
    .venv/bin/python bench/load.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_load
    .venv/bin/python bench/load.py --requests 4000                  # a smoke run
    bench/load.sh [--requests N]                                    # both, where PostgreSQL answers

The city: --pupils pupils (default: enough that every scan is a new pupil, plus 5 %) in classes of
40 (grades 1–9, one class teacher each), 40 classes per school, one school administrator per school,
schools spread over 4 districts, a city officer. 4 venues each run a lecture open now, with one
venue-staff account. A quarter of the classes (--history-share) have a history: 0–30 completed stays
this school year and 0–20 last year per pupil at 12 other venues, written in bulk as the app writes
them (a completed check-in, the credit computed by credits.rules.evaluate_stay with the pupil's venue
cap, the explanation credit_stay writes, the entry hashed onto the pupil's chain), then the bureau
roll-ups are rebuilt — the state a Monday morning starts from.

The mix (by request, shuffled in blocks of 20):
  * 60 % scans: a venue's staff device, POST /api/v1/checkins, an entry and later the exit of each
    pupil (each pupil once; every exit completes a 50–64 minute stay and appends a credit);
  * 25 % transcripts: GET /api/v1/students/{id}/transcript of a pupil with history, read by the class
    teacher or the school administrator (each read is audited; a changed ledger signs a new credential);
  * 10 % class progress: GET /api/v1/classes/{id}/progress of a class with history, its teacher;
  *  5 % statistics: the city officer, /api/v1/stats/credits by one or two dimensions (some filtered
    to a district) and /api/v1/stats/venues; each folds the entries the scans queued.

wrk (`apt-get install wrk`) runs 2 threads and --connections connections; each thread walks its own
request file once, in order (a pupil's exit follows its entry by at least 200 of that thread's
requests), and stops itself after its share of --requests answers (LuaJIT ffi timestamps each
request; the app echoes the X-Request-Id the script sends, so each answer is matched to its request
and timed per route, and a non-2xx answer's error code is kept). wrk draws one request at start-up
that it never sends, so each thread's first line is a throwaway GET /healthz, left out of the figures.
Every worker's RSS (and anonymous RSS, and the size of the Prometheus multiprocess files) is read
from /proc before the run and at every 10 % of it; workers are never recycled during the run
(GUNICORN_MAX_REQUESTS=0), so a leak would show. Rate limits and access logs are off (bench/common.py
server_env): this measures the pipeline, not the limiter. The client's latency includes the wait for a
free worker (16 connections, 4 sync workers), so the time spent in the worker per route is read too,
from the app's own Prometheus histogram (coarse buckets). Afterwards: every stay completed in the run
is credited once, every chain verifies, and the roll-ups, refreshed, match a recomputation. Exits 1
when a target is missed (worker RSS ≤ 150 MB, ≤ 2 MB growth over the second half, no error).
bench/load_memory.py replays one worker's share in one process to say where the memory goes.

Only loopback addresses are used; a PostgreSQL database is rebuilt from the migrations (its public
schema dropped), so its name must contain "bench" or "load".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.checkin_load import parse_wrk  # noqa: E402
from bench.common import fresh_app, start_server, stop_server  # noqa: E402

THREADS = 2
CLASS_SIZE = 40
CLASSES_PER_SCHOOL = 40
DISTRICTS = (("南山区", "NS"), ("福田区", "FT"), ("罗湖区", "LH"), ("宝安区", "BA"))
SCAN_BLOCK = 200  # pupils whose entries a thread sends before their exits
ROUTES = {  # class letter in the request files → route
    "s": "POST /api/v1/checkins",
    "t": "GET /api/v1/students/{id}/transcript",
    "p": "GET /api/v1/classes/{id}/progress",
    "a": "GET /api/v1/stats/credits",
    "v": "GET /api/v1/stats/venues",
}
MIX = "s" * 12 + "t" * 5 + "p" * 2 + "S"  # per 20 requests; S: one statistics request (a or v)
STATS_SHAPES = (
    ("a", "group_by=district"), ("a", "group_by=school"), ("a", "group_by=grade"),
    ("a", "group_by=activity_kind"), ("a", "group_by=month"), ("a", "group_by=venue_kind"),
    ("a", "group_by=district,grade"), ("a", "group_by=school,activity_kind&district_id={district}"),
    ("v", ""), ("v", "group_by=month"),
)
HISTORY_KINDS = {"visit": 95, "lecture": 50, "workshop": 75, "research": 200, "volunteer": 130}
HISTORY_VENUES = (("science_museum", "city"), ("science_base", "national"), ("demo_site", "provincial"),
                  ("enterprise_hall", "city"), ("museum", "provincial"), ("campus", "district"),
                  ("science_base", "district"), ("science_museum", "national"), ("demo_site", "city"),
                  ("museum", "national"), ("enterprise_hall", "district"), ("science_base", "provincial"))

LUA = r"""
-- Each thread sends the lines of its own request file once, in order. Every request carries an
-- X-Request-Id naming its line; the app echoes it, so each answer is matched to its request and
-- timed (CLOCK_MONOTONIC through LuaJIT's ffi: wrk times requests but does not tell the script).
-- After its share of answers a thread writes what it has and stops itself.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } load_timespec;
int clock_gettime(int clk_id, load_timespec *tp);
]]
local ts = ffi.new("load_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

local thread_counter = 0
function setup(thread)
  thread:set("tid", thread_counter)
  thread_counter = thread_counter + 1
end

local requests, classes, starts = {}, {}, {}
local counter, answered, share, stopped = 0, 0, 0, false
local out, buffer = nil, {}
local spare, spare_id

function init(args)
  -- args[1]: request file prefix, args[2]: record file prefix, args[3]: answers per thread ("n,n")
  local prefix = "lb" .. tid .. "-"
  local i = 0
  for line in io.lines(args[1] .. "." .. tid) do
    i = i + 1
    local cls, method, token, path, body = line:match("^(%S+) (%S+) (%S+) (%S+) ?(.*)$")
    local headers = {["X-Request-Id"] = prefix .. string.format("%08d", i)}
    if token ~= "-" then headers["Authorization"] = "Bearer " .. token end
    if method == "POST" then
      headers["Content-Type"] = "application/json"
      requests[i] = wrk.format("POST", path, headers, body)
    else
      requests[i] = wrk.format("GET", path, headers, nil)
    end
    classes[i] = cls
  end
  local k = 0
  for n in args[3]:gmatch("%d+") do
    if k == tid then share = tonumber(n) end
    k = k + 1
  end
  spare_id = prefix .. "spare"
  spare = wrk.format("GET", "/healthz", {["X-Request-Id"] = spare_id}, nil)
  out = io.open(args[2] .. "." .. tid, "w")
end

local function flush()
  if #buffer > 0 then
    out:write(table.concat(buffer))
    out:flush()
    buffer = {}
  end
end

function request()
  counter = counter + 1
  local r = requests[counter]
  if r == nil then return spare end   -- never reached when the files are long enough
  starts[counter] = now_us()
  return r
end

function response(status, headers, body)
  if stopped then return end
  local t = now_us()
  local id = headers["X-Request-Id"] or headers["x-request-id"]
  if id == spare_id then return end
  local n = id and tonumber(id:match("%-(%d+)$"))
  local cls, latency = "?", -1
  if n and starts[n] then
    cls, latency = classes[n], t - starts[n]
    starts[n] = nil
  end
  local code = "-"
  if status >= 300 then code = body:match('"code"%s*:%s*"([%w_]+)"') or "-" end
  buffer[#buffer + 1] = string.format("%s %d %d %d %s\n", cls, status, latency, t, code)
  if cls ~= "c" then answered = answered + 1 end
  if #buffer >= 25 then flush() end
  if answered >= share then
    flush()
    stopped = true
    wrk.thread:stop()
  end
end
"""


# --------------------------------------------------------------------------------------------------
# The city


def needed_pupils(requests: int) -> int:
    """Pupils for a run of `requests`: every scan pair a new pupil, 5 % spare, whole classes."""
    pairs = math.ceil(requests * 12 / 20 / 2) + 2 * THREADS
    return math.ceil(pairs * 1.05 / CLASS_SIZE) * CLASS_SIZE


def prepare(url: str, pupils: int, history_share: float, seed: int) -> dict:
    """A migrated database with the city described in the module docstring; returns ids and tokens."""
    from sqlalchemy import insert, select

    from app.auth.models import StaffVenue, TeacherClass, User
    from app.auth.passwords import hash_password
    from app.auth.tokens import issue_tokens
    from app.extensions import db
    from app.orgs.models import District, School, SchoolClass, Student
    from app.stats import rollup
    from app.venues import codes
    from app.venues.models import Activity, Venue

    rng = random.Random(seed)
    app = fresh_app(url, ACCESS_TOKEN_MINUTES=12 * 60)
    with app.app_context():
        started = time.perf_counter()
        districts = [District(name=name, code=code) for name, code in DISTRICTS]
        db.session.add_all(districts)
        db.session.flush()
        n_classes = math.ceil(pupils / CLASS_SIZE)
        n_schools = math.ceil(n_classes / CLASSES_PER_SCHOOL)
        schools = [School(name=f"{districts[s % 4].name}第{s + 1}学校", district_id=districts[s % 4].id)
                   for s in range(n_schools)]
        db.session.add_all(schools)
        db.session.flush()
        classes = [SchoolClass(school_id=schools[c // CLASSES_PER_SCHOOL].id, grade=1 + c % 9,
                               name=f"{1 + c % 9}年级({c // 9 + 1})班") for c in range(n_classes)]
        db.session.add_all(classes)
        db.session.flush()
        now = datetime.now(UTC)
        hashed = hash_password("bench-password")
        scan_venues, staff = [], []
        for d, district in enumerate(districts):
            venue = Venue(name=f"{district.name}青少年科技馆", kind="science_museum", level="district",
                          district_id=district.id)
            db.session.add(venue)
            db.session.flush()
            activity = Activity(venue_id=venue.id, kind="lecture", title=f"周一科普讲座（{district.name}）",
                                starts_at=now - timedelta(hours=4), ends_at=now + timedelta(hours=8),
                                min_minutes=45, grades=list(range(1, 10)))
            user = User(username=f"bench-staff-{d}", password_hash=hashed, role="venue_staff")
            db.session.add_all([activity, user])
            db.session.flush()
            db.session.add(StaffVenue(user_id=user.id, venue_id=venue.id))
            scan_venues.append((venue.id, activity.id))
            staff.append(user)
        admins = [User(username=f"bench-admin-{s.id}", password_hash=hashed, role="school_admin", school_id=s.id)
                  for s in schools]
        teachers = [User(username=f"bench-teacher-{c.id}", password_hash=hashed, role="teacher",
                         school_id=c.school_id) for c in classes]
        city = User(username="bench-city", password_hash=hashed, role="city_officer")
        db.session.add_all([*admins, *teachers, city])
        db.session.flush()
        db.session.add_all([TeacherClass(user_id=t.id, class_id=c.id) for t, c in zip(teachers, classes, strict=True)])
        db.session.execute(insert(Student), [
            {"school_id": classes[i // CLASS_SIZE].school_id, "class_id": classes[i // CLASS_SIZE].id,
             "grade": classes[i // CLASS_SIZE].grade, "student_number": f"L{i:07d}", "name": f"学生{i}",
             "active": True, "pass_version": 1}
            for i in range(pupils)
        ])
        db.session.commit()
        rows = db.session.execute(select(Student.id, Student.class_id).order_by(Student.id)).all()
        by_class: dict[int, list[int]] = defaultdict(list)
        for sid, cid in rows:
            by_class[cid].append(sid)
        class_ids = [c.id for c in classes]
        history_classes = sorted(rng.sample(class_ids, max(1, round(len(class_ids) * history_share))))
        print(f"  city: {len(districts)} districts, {n_schools} schools, {n_classes} classes, {pupils} pupils "
              f"({time.perf_counter() - started:.1f} s)", flush=True)
        started = time.perf_counter()
        entries = write_history(rng, [sid for c in history_classes for sid in by_class[c]], districts[0].id, now)
        print(f"  history: {entries} completed stays and ledger entries for the pupils of {len(history_classes)} "
              f"classes ({time.perf_counter() - started:.1f} s)", flush=True)
        started = time.perf_counter()
        report = rollup.refresh()
        print(f"  roll-ups brought up to date: {report.as_dict()} ({time.perf_counter() - started:.1f} s)", flush=True)
        school_of_class = {c.id: c.school_id for c in classes}
        class_of = {sid: cid for sid, cid in rows}
        tokens = {"city": issue_tokens(city)["access_token"]}
        tokens.update({f"staff{d}": issue_tokens(u)["access_token"] for d, u in enumerate(staff)})
        tokens.update({f"admin{u.school_id}": issue_tokens(u)["access_token"] for u in admins})
        tokens.update({f"teacher{c.id}": issue_tokens(t)["access_token"]
                       for t, c in zip(teachers, classes, strict=True)})
        return {
            "app": app, "scan_venues": scan_venues, "districts": [d.id for d in districts],
            "students": [sid for sid, _ in rows], "class_of": class_of, "school_of_class": school_of_class,
            "history_classes": history_classes,
            "history_pupils": [sid for c in history_classes for sid in by_class[c]],
            "passes": {sid: codes.student_pass(sid, 1) for sid, _ in rows},
            "tokens": tokens, "history_entries": entries,
        }


def write_history(rng: random.Random, pupils: list[int], district_id: int, now: datetime) -> int:
    """Completed stays and their credit entries for `pupils`, this school year and last, in bulk but
    as credits.service.credit_stay writes them (rules, venue cap, explanation, hash chain)."""
    from sqlalchemy import insert

    from app.checkins.models import Checkin
    from app.common import iso
    from app.credits import ledger
    from app.credits.models import GENESIS_HASH, LedgerEntry
    from app.credits.rules import SHANGHAI, Stay, StayHistory, evaluate_stay, local_date, school_year_of, term_of
    from app.credits.service import active_rules
    from app.extensions import db
    from app.venues.models import Activity, Venue

    rules = active_rules()
    this_year = school_year_of(local_date(now))
    first = date(int(this_year[:4]), 9, 1)
    last_year_days = [date(first.year - 1, 9, 1) + timedelta(days=i) for i in range(365)]
    this_year_days = [first + timedelta(days=i) for i in range((local_date(now) - first).days)]
    venues = []
    for n, (kind, level) in enumerate(HISTORY_VENUES):
        venue = Venue(name=f"科普基地{n + 1}号（{kind}）", kind=kind, level=level, district_id=district_id)
        db.session.add(venue)
        db.session.flush()
        acts = {}
        for activity_kind in HISTORY_KINDS:
            activity = Activity(venue_id=venue.id, kind=activity_kind, title=f"科普基地{n + 1}号·{activity_kind}",
                                starts_at=datetime(first.year - 1, 9, 1, tzinfo=UTC), ends_at=now - timedelta(days=1),
                                min_minutes=30, grades=list(range(1, 10)))
            db.session.add(activity)
            db.session.flush()
            acts[activity_kind] = (activity.id, activity.title)
        venues.append((venue.id, venue.name, kind, level, acts))
    db.session.commit()
    checkin_table, ledger_table = Checkin.__table__, LedgerEntry.__table__
    insert_checkins = insert(checkin_table).returning(checkin_table.c.id, sort_by_parameter_order=True)
    written = 0
    for start in range(0, len(pupils), 400):
        stays = []  # (pupil, venue, activity kind, activity, entered, minutes)
        for pupil in pupils[start:start + 400]:
            days = sorted(rng.sample(last_year_days, rng.choice((0, 0, 5, 10, 20))) +
                          rng.sample(this_year_days, min(len(this_year_days), rng.randint(0, 30))))
            for day in days:
                venue = venues[rng.randrange(len(venues))]
                kind = rng.choice(tuple(HISTORY_KINDS))
                entered = (datetime(day.year, day.month, day.day, 9, tzinfo=SHANGHAI).astimezone(UTC)
                           + timedelta(minutes=rng.randrange(0, 300, 5)))
                minutes = max(10, HISTORY_KINDS[kind] + rng.randint(-25, 25))
                stays.append((pupil, venue, kind, venue[4][kind], entered, minutes))
        if not stays:
            continue
        checkin_rows = []
        for pupil, venue, _kind, (activity_id, _title), entered, minutes in stays:
            midnight = datetime.combine(local_date(entered) + timedelta(days=1), datetime.min.time(), tzinfo=SHANGHAI)
            checkin_rows.append({
                "student_id": pupil, "activity_id": activity_id, "venue_id": venue[0], "entered_at": entered,
                "exited_at": entered + timedelta(minutes=minutes), "deadline": midnight.astimezone(UTC),
                "minutes": minutes, "source": "staff", "exit_source": "staff", "device_id": None,
                "status": "completed", "flags": [], "created_by": None, "created_at": entered,
            })
        ids = db.session.execute(insert_checkins, checkin_rows).scalars().all()
        entries, head, seq, venue_terms = [], GENESIS_HASH, 0, Counter()
        previous = None
        for checkin_id, (pupil, venue, kind, (activity_id, title), entered, minutes) in zip(ids, stays, strict=True):
            if pupil != previous:
                head, seq, venue_terms, previous = GENESIS_HASH, 0, Counter(), pupil
            day = local_date(entered)
            year, term = school_year_of(day), term_of(day)
            history = StayHistory(day_activity_total=Decimal("0"), venue_stays_this_term=venue_terms[venue[0], year, term])
            credit = evaluate_stay(rules, Stay(activity_kind=kind, venue_kind=venue[2], venue_level=venue[3],
                                               minutes=minutes, min_minutes=30), history)
            if credit.amount > 0:
                venue_terms[venue[0], year, term] += 1
            exited = entered + timedelta(minutes=minutes)
            seq += 1
            entry = {
                "student_id": pupil, "seq": seq, "kind": "credit", "amount": Decimal(credit.amount).quantize(Decimal("0.01")),
                "activity_kind": kind, "competition": None, "source": "checkin", "source_id": checkin_id,
                "unique_key": f"checkin:{checkin_id}", "reverses_id": None, "venue_id": venue[0],
                "occurred_at": entered, "school_year": year, "term": term, "rule_version": rules.version,
                "explanation": {
                    **credit.explanation,
                    "checkin": {"id": checkin_id, "activity_id": activity_id, "activity_title": title,
                                "venue_id": venue[0], "venue_name": venue[1], "entered_at": iso(entered),
                                "exited_at": iso(exited)},
                    "history": {"day_activity_total": "0.00",
                                "venue_stays_this_term": history.venue_stays_this_term},
                },
                "created_at": exited + timedelta(seconds=1), "created_by": None, "prev_hash": head,
            }
            entry["hash"] = head = hashlib.sha256(ledger.canonical_json(_Fields(entry))).hexdigest()
            entries.append(entry)
        db.session.execute(insert(ledger_table), entries)
        db.session.commit()
        written += len(entries)
    return written


class _Fields:
    """A dict seen through attributes, as ledger.canonical_json reads an entry."""

    def __init__(self, values: dict):
        self.__dict__.update(values)


# --------------------------------------------------------------------------------------------------
# Request files


def write_requests(work: Path, data: dict, requests: int, connections: int, seed: int) -> list[int]:
    """One request file per wrk thread (`work/requests.<tid>`): a throwaway first line, then the
    thread's share of the mix, then a tail of reads for the requests drawn after the share is
    answered. Returns each thread's share."""
    rng = random.Random(seed + 1)
    shares = [requests // THREADS + (1 if t < requests % THREADS else 0) for t in range(THREADS)]
    tokens, passes = data["tokens"], data["passes"]
    year = data["school_year"]
    pupils = list(data["students"])
    rng.shuffle(pupils)  # a morning's visitors come from every school
    history_pupils, history_classes = data["history_pupils"], data["history_classes"]
    class_of, school_of_class = data["class_of"], data["school_of_class"]
    now = datetime.now(UTC)
    used = 0

    def transcript() -> str:
        sid = history_pupils[rng.randrange(len(history_pupils))]
        cid = class_of[sid]
        reader = f"teacher{cid}" if rng.random() < 0.5 else f"admin{school_of_class[cid]}"
        return f"t GET {tokens[reader]} /api/v1/students/{sid}/transcript?school_year={year}"

    def progress() -> str:
        cid = history_classes[rng.randrange(len(history_classes))]
        return f"p GET {tokens[f'teacher{cid}']} /api/v1/classes/{cid}/progress?school_year={year}"

    def stats(n: int) -> str:
        cls, query = STATS_SHAPES[n % len(STATS_SHAPES)]
        query = query.format(district=data["districts"][n % len(data["districts"])])
        path = "credits" if cls == "a" else "venues"
        return f"{cls} GET {tokens['city']} /api/v1/stats/{path}?school_year={year}{'&' + query if query else ''}"

    for tid, share in enumerate(shares):
        n_scans = sum(1 for i in range(share) if MIX[i % 20] == "s")
        mine = pupils[used:used + (n_scans + 1) // 2]
        used += len(mine)
        if len(mine) * 2 < n_scans:
            raise SystemExit(f"not enough pupils for {requests} requests: raise --pupils")
        scans = []
        for start in range(0, len(mine), SCAN_BLOCK):
            block = mine[start:start + SCAN_BLOCK]
            times = {}
            for sid in block:
                entered = now - timedelta(minutes=130) + timedelta(seconds=rng.randrange(3600))
                times[sid] = (entered, entered + timedelta(minutes=rng.randrange(50, 65)))
            for direction in ("entry", "exit"):
                for sid in block:
                    d = sid % len(data["scan_venues"])
                    body = json.dumps({"student_pass": passes[sid], "activity_id": data["scan_venues"][d][1],
                                       "direction": direction, "nonce": str(uuid.uuid4()),
                                       "scanned_at": times[sid][direction == "exit"].isoformat()},
                                      separators=(",", ":"))
                    scans.append(f"s POST {tokens[f'staff{d}']} /api/v1/checkins {body}")
        lines = ["c GET - /healthz"]
        s = 0
        for block_start in range(0, share, 20):
            slots = list(MIX[:min(20, share - block_start)])
            rng.shuffle(slots)
            for slot in slots:
                if slot == "s":
                    lines.append(scans[s])
                    s += 1
                elif slot == "t":
                    lines.append(transcript())
                elif slot == "p":
                    lines.append(progress())
                else:
                    lines.append(stats(block_start // 20))
        lines += [transcript() for _ in range(connections)]  # drawn after the share is answered
        (work / f"requests.{tid}").write_text("\n".join(lines) + "\n")
    return shares


# --------------------------------------------------------------------------------------------------
# Measuring


def worker_memory(master_pid: int, metrics_dir: Path) -> dict:
    """Each worker's RSS and anonymous RSS (MB, from /proc/PID/status), and the metrics files' size."""
    pids = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True).stdout.split()
    workers = {}
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines()
                  if line.startswith(("VmRSS:", "RssAnon:", "RssFile:", "RssShmem:"))}
        workers[int(pid)] = {"rss": fields["VmRSS"] / 1024, "anon": fields["RssAnon"] / 1024}
    metrics = sum(f.stat().st_size for f in metrics_dir.glob("*.db")) / 1024
    return {"workers": workers, "metrics_kb": metrics}


class Records:
    """Reads the per-thread record files as wrk's threads append to them."""

    def __init__(self, prefix: Path):
        self.paths = [Path(f"{prefix}.{t}") for t in range(THREADS)]
        self.offsets = [0] * THREADS
        self.lines = [0] * THREADS

    def count(self) -> int:
        for i, path in enumerate(self.paths):
            if not path.exists():
                continue
            with path.open("rb") as f:
                f.seek(self.offsets[i])
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1
            self.offsets[i] += end
            self.lines[i] += sum(1 for line in chunk[:end].splitlines() if not line.startswith(b"c "))
        return sum(self.lines)

    def all(self) -> list[tuple[str, int, int, int, str]]:
        out = []
        for path in self.paths:
            for line in path.read_text().splitlines():
                cls, status, latency, end, code = line.split()
                if cls != "c":
                    out.append((cls, int(status), int(latency), int(end), code))
        return out


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(pct / 100 * len(sorted_values)) - 1))]


def latency_row(records) -> dict:
    ms = sorted(r[2] / 1000 for r in records if r[2] >= 0)
    return {"requests": len(records), "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99), "max_ms": ms[-1] if ms else float("nan"),
            "mean_ms": statistics.fmean(ms) if ms else float("nan"),
            "non_2xx": sum(1 for r in records if not 200 <= r[1] < 300)}


def worker_times(metrics_dir: Path) -> dict:
    """Time spent in the worker per route (the app's Prometheus histogram, summed over the workers'
    multiprocess files): count, and p50/p99 interpolated within the histogram's buckets (5, 10, 25,
    50, 100, 250, 500 ms, 1, 2.5, 5 s) as Prometheus' histogram_quantile does — coarse, but without the
    wait for a free worker that the client's figures include."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))
    buckets: dict[str, Counter] = defaultdict(Counter)
    for metric in registry.collect():
        if metric.name != "ledger_http_request_duration_seconds":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                route = f"{sample.labels['method']} {sample.labels['route']}"
                buckets[route][float(sample.labels["le"])] += sample.value

    def quantile(cumulative: list[tuple[float, float]], q: float) -> float:
        total = cumulative[-1][1]
        rank, lower, below = q * total, 0.0, 0.0
        for upper, count in cumulative:
            if count >= rank:
                if math.isinf(upper):
                    return lower * 1000  # beyond the last bound: its lower edge
                return (lower + (upper - lower) * (rank - below) / max(count - below, 1e-9)) * 1000
            lower, below = upper, count
        return float("nan")

    out = {}
    for route, counts in buckets.items():
        cumulative = sorted(counts.items())
        if cumulative and cumulative[-1][1]:
            out[route] = {"requests": int(cumulative[-1][1]), "p50_ms": quantile(cumulative, 0.5),
                          "p99_ms": quantile(cumulative, 0.99)}
    return out


def run(args, data: dict, work: Path, url: str) -> dict:
    shares = write_requests(work, data, args.requests, args.connections, args.seed)
    lua = work / "mix.lua"
    lua.write_text(LUA)
    metrics_dir = work / "metrics"
    server = start_server(url, args.workers, args.port, GUNICORN_MAX_REQUESTS="0",
                          PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    base = f"http://127.0.0.1:{args.port}"
    records = Records(work / "records")
    samples = []
    try:
        time.sleep(1)  # every worker booted
        samples.append({"at": 0, "time": time.time(), **worker_memory(server.pid, metrics_dir)})
        cmd = ["wrk", "-t", str(THREADS), "-c", str(args.connections), "-d", f"{args.max_seconds}s",
               "--timeout", "30s", "--latency", "-s", str(lua), base, "--", str(work / "requests"),
               str(work / "records"), ",".join(map(str, shares))]
        started = time.time()
        wrk = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        marks = [round(args.requests * k / 10) for k in range(1, 11)]
        while True:
            done = records.count()
            if marks and done >= marks[0]:
                while marks and done >= marks[0]:
                    marks.pop(0)
                sample = {"at": done, "time": time.time(), **worker_memory(server.pid, metrics_dir)}
                samples.append(sample)
                rss = sorted(w["rss"] for w in sample["workers"].values())
                print(f"  {done:>7} answered, {done / (sample['time'] - started):5.0f} req/s so far, worker RSS "
                      f"{', '.join(f'{r:.0f}' for r in rss)} MB", flush=True)
            if done >= args.requests or wrk.poll() is not None:
                break
            time.sleep(0.25)
        if wrk.poll() is None:
            wrk.send_signal(signal.SIGINT)  # wrk sleeps for -d even when its threads have stopped
        out, err = wrk.communicate(timeout=120)
        if wrk.returncode not in (0, -signal.SIGINT):
            raise SystemExit(f"wrk failed ({wrk.returncode}): {err}")
    finally:
        stop_server(server)
    return {"wrk": parse_wrk(out), "wrk_output": out, "records": records.all(), "samples": samples,
            "worker_times": worker_times(metrics_dir)}


def check_after(data: dict) -> dict:
    """The run's stays each credited once, every chain verified, the roll-ups equal to a recomputation."""
    from sqlalchemy import func, select

    from app.checkins.models import Checkin
    from app.credits.ledger import verify_all
    from app.credits.models import LedgerEntry
    from app.extensions import db
    from app.stats import rollup

    activities = [a for _, a in data["scan_venues"]]
    with data["app"].app_context():
        completed = db.session.scalar(select(func.count()).select_from(Checkin).where(
            Checkin.activity_id.in_(activities), Checkin.status == "completed"))
        still_open = db.session.scalar(select(func.count()).select_from(Checkin).where(
            Checkin.activity_id.in_(activities), Checkin.status == "open"))
        credited = db.session.scalar(select(func.count(func.distinct(LedgerEntry.source_id))).where(
            LedgerEntry.source == "checkin", LedgerEntry.source_id.in_(
                select(Checkin.id).where(Checkin.activity_id.in_(activities)))))
        entries_run = db.session.scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.source == "checkin", LedgerEntry.source_id.in_(
                select(Checkin.id).where(Checkin.activity_id.in_(activities)))))
        chains = list(verify_all())
        db.session.remove()
        started = time.perf_counter()
        refreshed = rollup.refresh().as_dict()
        check = rollup.check()
        db.session.remove()
        return {"completed": completed, "open": still_open, "credited": credited, "entries": entries_run,
                "chains": len(chains), "broken": sum(not c.ok for c in chains), "refresh": refreshed,
                "rollups_ok": check.ok, "rollups_report": check.as_dict(),
                "check_seconds": time.perf_counter() - started}


# --------------------------------------------------------------------------------------------------
# Report


def report(args, backend: str, data: dict, result: dict, after: dict, provenance: dict) -> dict:
    recs = result["records"]
    samples = result["samples"]
    n = len(recs)
    first_start = min(r[3] - max(r[2], 0) for r in recs)
    last_end = max(r[3] for r in recs)
    seconds = (last_end - first_start) / 1e6
    overall = {**latency_row(recs), "rps": n / seconds, "seconds": seconds}
    by_route = {cls: latency_row([r for r in recs if r[0] == cls]) for cls in ROUTES}
    unmatched = [r for r in recs if r[0] not in ROUTES]
    errors = Counter((ROUTES.get(r[0], "unmatched"), r[1], r[4]) for r in recs if not 200 <= r[1] < 300)
    wrk = result["wrk"]
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", result["wrk_output"])
    socket_errors = dict(zip(("connect", "read", "write", "timeout"), map(int, socket.groups()), strict=True)) \
        if socket else {"connect": 0, "read": 0, "write": 0, "timeout": 0}

    by_end = sorted(recs, key=lambda r: r[3])
    intervals = []  # the answers between two memory samples (in order of answer)
    for before, sample in zip(samples, samples[1:], strict=False):
        lo, hi = min(before["at"], n), min(sample["at"], n)
        part = by_end[lo:hi]
        if not part:
            intervals.append(None)
            continue
        begin = by_end[lo - 1][3] if lo else first_start
        row = latency_row(part)
        row["rps"] = len(part) / max(1e-6, (part[-1][3] - begin) / 1e6)
        intervals.append(row)

    pids = sorted(samples[0]["workers"])
    restarted = any(sorted(s["workers"]) != pids for s in samples)
    half = next(s for s in samples if s["at"] >= args.requests // 2)
    end = samples[-1]
    growth = {pid: end["workers"][pid]["rss"] - half["workers"][pid]["rss"]
              for pid in pids if pid in end["workers"] and pid in half["workers"]}
    anon_growth = {pid: end["workers"][pid]["anon"] - half["workers"][pid]["anon"]
                   for pid in pids if pid in end["workers"] and pid in half["workers"]}
    largest = max(w["rss"] for w in end["workers"].values())

    w = print
    w()
    w(f"== load mix on {backend}: {n:,} requests answered (of {args.requests:,}), gunicorn {args.workers} sync "
      f"workers, wrk {THREADS} threads / {args.connections} connections, {os.cpu_count()} CPUs (shared machine)")
    w(f"   code: {provenance['commit']}{' + uncommitted app/ changes: ' + provenance['dirty'] if provenance['dirty'] else ''}")
    w(f"   city: {len(data['students']):,} pupils, {len(data['history_classes'])} classes with history "
      f"({len(data['history_pupils']):,} pupils, {data['history_entries']:,} entries); rate limits off")
    w(f"   throughput {overall['rps']:.1f} req/s over {seconds:.0f} s; wrk itself: {wrk['requests']:,} requests, "
      f"{wrk['rps']:.1f} req/s (its time includes the idle tail until it was stopped)")
    w()
    w(f"{'route':<40}{'requests':>9}{'share':>7}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'non-2xx':>9}")
    for cls, route in ROUTES.items():
        r = by_route[cls]
        w(f"{route:<40}{r['requests']:>9,}{r['requests'] / n:>7.1%}{r['p50_ms']:>9.1f}{r['p90_ms']:>9.1f}"
          f"{r['p99_ms']:>9.1f}{r['max_ms']:>9.0f}{r['non_2xx']:>9}")
    w(f"{'all':<40}{n:>9,}{1:>7.0%}{overall['p50_ms']:>9.1f}{overall['p90_ms']:>9.1f}{overall['p99_ms']:>9.1f}"
      f"{overall['max_ms']:>9.0f}{overall['non_2xx']:>9}")
    w()
    w("time in the worker (app's Prometheus histogram, interpolated within its buckets; no wait for a worker):")
    w(f"{'route':<52}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for route, r in sorted(result["worker_times"].items(), key=lambda item: -item[1]["requests"]):
        w(f"{route:<52}{r['requests']:>9,}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}")
    if unmatched:
        w(f"answers not matched to a request (no X-Request-Id echoed): {len(unmatched)}")
    w()
    w(f"errors: {overall['non_2xx']} non-2xx; socket errors {socket_errors} (wrk --timeout 30 s); "
      f"wrk counted {wrk['non_2xx']} non-2xx")
    for (route, status, code), count in sorted(errors.items()):
        w(f"   {route:<40} {status} {code:<24} {count}")
    w()
    w("progress (memory sampled as each tenth of the answers came in; each row's figures are the answers since")
    w("the row before, in order of answer):")
    w(f"{'answered':>9}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>8}   {'worker RSS MB':<26}{'anon max':>9}"
      f"{'metrics KB':>11}")
    for i, sample in enumerate(samples):
        rss = ", ".join(f"{sample['workers'][p]['rss']:.0f}" if p in sample["workers"] else "gone" for p in pids)
        row = intervals[i - 1] if i else None
        rate = f"{row['rps']:>8.1f}{row['p50_ms']:>9.1f}{row['p99_ms']:>9.1f}{row['non_2xx']:>8}" if row else " " * 34
        w(f"{sample['at']:>9}{rate}   {rss:<26}{max(x['anon'] for x in sample['workers'].values()):>9.0f}"
          f"{sample['metrics_kb']:>11.0f}")
    w(f"largest worker at the end: {largest:.0f} MB (target ≤ 150); growth over the second half "
      f"(answer {half['at']:,} → {end['at']:,}): RSS {', '.join(f'{g:+.1f}' for g in growth.values())} MB, "
      f"anonymous {', '.join(f'{g:+.1f}' for g in anon_growth.values())} MB"
      f"{'; A WORKER RESTARTED' if restarted else ''}")
    w()
    w(f"after the run: {after['completed']:,} stays completed at the scan venues ({after['open']} still open), "
      f"{after['credited']:,} credited by {after['entries']:,} entries; {after['chains']:,} chains, "
      f"{after['broken']} broken; roll-ups refreshed {after['refresh']} and "
      f"{'match' if after['rollups_ok'] else 'DO NOT match'} a recomputation ({after['check_seconds']:.0f} s)")
    if not after["rollups_ok"]:
        w(f"   {after['rollups_report']}")
    ok = (largest <= 150 and overall["non_2xx"] == 0 and not any(socket_errors.values()) and not restarted
          and max(growth.values()) <= 2 and after["broken"] == 0 and after["rollups_ok"]
          and after["credited"] == after["entries"] == after["completed"])
    w(f"targets (worker RSS ≤ 150 MB, ≤ 2 MB growth in the second half, 0 errors, every stay credited once, "
      f"chains and roll-ups ok): {'MET' if ok else 'NOT MET'}")
    return {"backend": backend, "requests": n, "overall": overall, "by_route": {ROUTES[c]: r for c, r in by_route.items()},
            "errors": [{"route": r, "status": s, "code": c, "count": k} for (r, s, c), k in sorted(errors.items())],
            "socket_errors": socket_errors, "intervals": intervals, "worker_times": result["worker_times"],
            "samples": [{"at": s["at"], "metrics_kb": s["metrics_kb"],
                         "workers": {str(p): v for p, v in s["workers"].items()}} for s in samples],
            "growth_mb": growth, "anon_growth_mb": anon_growth, "largest_mb": largest, "restarted": restarted,
            "after": {k: v for k, v in after.items() if k != "rollups_report"}, "provenance": provenance,
            "wrk": wrk, "ok": ok}


def provenance() -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--short", "--", "app", "config", "wsgi.py"], cwd=ROOT,
                           capture_output=True, text=True).stdout.split("\n")
    return {"commit": commit.strip(), "dirty": ", ".join(line[3:] for line in dirty if line.strip())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--requests", type=int, default=100_000, help="answers to collect (default 100,000)")
    parser.add_argument("--pupils", type=int, help="default: enough for every scan pair to be a new pupil")
    parser.add_argument("--history-share", type=float, default=0.25, help="share of classes with a history")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--port", type=int, default=5078)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--max-seconds", type=int, default=4 * 3600, help="bound on the run's duration")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (request files, wrk records, metrics, the SQLite file)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    if args.requests < 100:
        raise SystemExit("--requests: at least 100")
    work = Path(tempfile.mkdtemp(prefix="load-bench-"))
    url = args.database_url or f"sqlite:///{work / 'load.sqlite3'}"
    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    if backend == "PostgreSQL":
        parts = urlsplit(url)
        name = parts.path.lstrip("/")
        if parts.hostname not in ("127.0.0.1", "localhost", "::1") or not re.search(r"bench|load", name):
            raise SystemExit("the PostgreSQL database is dropped and rebuilt: use one on loopback whose name "
                             "contains 'bench' or 'load'")
    pupils = args.pupils or needed_pupils(args.requests)
    prov = provenance()
    print(f"preparing {pupils:,} pupils on {backend} in {work} …", flush=True)
    data = prepare(url, pupils, args.history_share, args.seed)
    with data["app"].app_context():
        from app.credits.rules import local_date, school_year_of

        data["school_year"] = school_year_of(local_date(datetime.now(UTC)))
    print(f"running {args.requests:,} requests …", flush=True)
    result = run(args, data, work, url)
    print("checking the ledger and the roll-ups …", flush=True)
    after = check_after(data)
    summary = report(args, backend, data, result, after, prov)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, default=str))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
