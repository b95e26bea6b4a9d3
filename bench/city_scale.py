#!/usr/bin/env python3
"""Bureau statistics at city scale: a synthetic city, the roll-ups, and the query times.

    # the full city (10 districts, 1,000 schools, 1 M pupils, 2 M then 20 M ledger entries):
    psql -h 127.0.0.1 -U postgres -c 'create database bench_city'
    .venv/bin/python bench/city_scale.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_city

    # a few thousand entries on a temporary SQLite file (what the test suite runs):
    .venv/bin/python bench/city_scale.py --tiny

What it does, with a progress bar and a timing for each step:

1. rebuilds the schema with the migrations (the database name must contain "bench", or pass --force);
2. loads the city with PostgreSQL COPY (batched executemany on SQLite): districts, schools (primary
   1–6, middle 7–9, nine-year 1–9), classes of 40, pupils (2 % inactive), venues of every kind and level;
3. for each size in --entries (default 2 M, then 20 M): appends ledger entries pupil by pupil
   (credited stays of every kind, competitions, reversals, adjustments; 10 % in the previous school
   year) with COPY, rebuilds the roll-ups set-based (`rollup.rebuild`, as `flask stats rebuild`),
   then times every query shape through the Flask test client (auth, query, suppression, JSON):
   warm-ups, then --runs timed requests, p50 / p95 / max in milliseconds;
4. times the hot path at that size: ledger.append (rolled back, then committed; a trigger queues each
   entry for the roll-ups) and the refresh that folds the committed ones (--appends 0: skipped);
5. optionally (--check) recomputes everything from scratch and compares (`flask stats check`);
6. prints the table (markdown), the ratio t(last)/t(first) of each shape's p95, and writes --json.

The ledger rows carry placeholder hashes: the chain is not what is measured here (bench/checkin_load.py
measures real scans). Targets on PostgreSQL: p95 ≤ 300 ms per shape and t(20 M)/t(2 M) ≤ 1.5.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DISTRICT_NAMES = ["福田区", "罗湖区", "南山区", "盐田区", "宝安区", "龙岗区", "龙华区", "坪山区", "光明区", "大鹏新区"]
VENUE_KINDS = ["science_base", "demo_site", "enterprise_hall", "science_museum", "museum", "campus"]
VENUE_LEVELS = ["national", "provincial", "city", "district"]
LEVEL_MULTIPLIER = {"national": 1.5, "provincial": 1.2, "city": 1.0, "district": 0.8}
# (kind, weight, base amounts in cents before the multiplier)
ACTIVITY_MIX = [("visit", 45, [0, 50, 100, 150, 200]), ("lecture", 20, [100]), ("workshop", 15, [150]),
                ("research", 10, [200]), ("volunteer", 10, [50, 100, 150, 200])]
YEAR = "2026-2027"
PREVIOUS = "2025-2026"


# --------------------------------------------------------------------------------------------------
# Progress and timing


class Progress:
    """A one-line progress bar on stderr: [#####.....] 45% 9.0M/20.0M 180k/s ETA 0:50."""

    def __init__(self, label: str, total: int, quiet: bool = False):
        self.label, self.total, self.done, self.quiet = label, max(total, 1), 0, quiet
        self.started = self.last = time.perf_counter()

    def advance(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if not self.quiet and (now - self.last > 0.5 or self.done >= self.total):
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            eta = (self.total - self.done) / rate if rate else 0
            filled = int(30 * min(self.done / self.total, 1))
            sys.stderr.write(f"\r  {self.label:<16} [{'#' * filled}{'.' * (30 - filled)}] "
                             f"{100 * self.done / self.total:5.1f}% {_human(self.done)}/{_human(self.total)} "
                             f"{_human(rate)}/s ETA {int(eta // 60)}:{int(eta % 60):02d} ")
            sys.stderr.flush()

    def finish(self) -> float:
        elapsed = time.perf_counter() - self.started
        if not self.quiet:
            sys.stderr.write("\n")
        return elapsed


def _human(n: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def log(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------------------------------
# Loading rows: COPY on PostgreSQL, executemany on SQLite


class Loader:
    def __init__(self, engine):
        self.engine = engine
        self.pg = engine.dialect.name == "postgresql"

    def load(self, table: str, columns: list[str], rows, progress: Progress | None = None, batch: int = 50_000) -> int:
        """Write an iterable of tuples (None = NULL) into `table`."""
        raw = self.engine.raw_connection()
        count = 0
        try:
            if self.pg:
                with raw.cursor() as cur:
                    cur.execute("SET session_replication_role = replica")  # bulk load: no triggers, no FK checks
                    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        buffer = io.StringIO()
                        pending = 0
                        for row in rows:
                            buffer.write("\t".join("\\N" if v is None else str(v) for v in row))
                            buffer.write("\n")
                            pending += 1
                            if pending >= batch:
                                copy.write(buffer.getvalue())
                                buffer = io.StringIO()
                                count += pending
                                if progress:
                                    progress.advance(pending)
                                pending = 0
                        if pending:
                            copy.write(buffer.getvalue())
                            count += pending
                            if progress:
                                progress.advance(pending)
                    cur.execute("SET session_replication_role = DEFAULT")
            else:
                cur = raw.cursor()
                cur.execute("BEGIN")
                sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
                chunk = []
                for row in rows:
                    chunk.append(row)
                    if len(chunk) >= batch:
                        cur.executemany(sql, chunk)
                        count += len(chunk)
                        if progress:
                            progress.advance(len(chunk))
                        chunk = []
                if chunk:
                    cur.executemany(sql, chunk)
                    count += len(chunk)
                    if progress:
                        progress.advance(len(chunk))
            raw.commit()
        finally:
            raw.close()
        return count


# --------------------------------------------------------------------------------------------------
# The synthetic city


class City:
    """Ids and attributes kept in memory to generate ledger entries pupil by pupil."""

    def __init__(self, districts: int, schools: int, students: int, venues: int, seed: int):
        self.rng = random.Random(seed)
        self.n_districts, self.n_schools, self.n_students, self.n_venues = districts, schools, students, venues
        self.student_district: list[int] = []  # index = student id - 1
        self.student_weight: list[float] = []
        self.next_seq: list[int] = []
        self.venues_by_district: dict[int, list[tuple[int, str, str]]] = {}
        self.all_venues: list[tuple[int, str, str]] = []

    def build(self, loader: Loader, quiet: bool) -> dict:
        rng = self.rng
        timings = {}
        started = time.perf_counter()
        loader.load("districts", ["id", "name", "code"],
                    [(d, DISTRICT_NAMES[(d - 1) % 10] + ("" if d <= 10 else str(d)), f"D{d:03d}")
                     for d in range(1, self.n_districts + 1)])
        schools, grades_of = [], {}
        for s in range(1, self.n_schools + 1):
            district = (s - 1) % self.n_districts + 1
            r = rng.random()
            grades = list(range(1, 7)) if r < 0.6 else list(range(7, 10)) if r < 0.85 else list(range(1, 10))
            grades_of[s] = grades
            kind = "小学" if grades == list(range(1, 7)) else "中学" if grades[0] == 7 else "九年一贯制学校"
            schools.append((s, f"{DISTRICT_NAMES[(district - 1) % 10]}第{s}{kind}", district, rng.random() < 0.1))
        loader.load("schools", ["id", "name", "district_id", "pilot"],
                    [(s, n, d, "t" if p and loader.pg else "f" if loader.pg else int(p)) for s, n, d, p in schools])
        # Pupils: the same number per school, spread over its grades, in classes of 40.
        per_school = self.n_students // self.n_schools
        classes, students = [], []
        class_id = student_id = 0
        for s, _name, district, _pilot in schools:
            count = per_school + (1 if s <= self.n_students % self.n_schools else 0)
            grades = grades_of[s]
            for gi, grade in enumerate(grades):
                in_grade = count // len(grades) + (1 if gi < count % len(grades) else 0)
                for c in range((in_grade + 39) // 40):
                    class_id += 1
                    classes.append((class_id, s, grade, f"{grade}年级({c + 1})班"))
                    for _ in range(min(40, in_grade - 40 * c)):
                        student_id += 1
                        active = rng.random() >= 0.02
                        students.append((student_id, s, class_id, grade, active))
                        self.student_district.append(district)
                        r = rng.random()
                        self.student_weight.append(0.0 if r < 0.1 else 0.4 if r < 0.35 else 1.0 if r < 0.85 else 2.5)
                        self.next_seq.append(1)
        self.n_students = student_id
        loader.load("classes", ["id", "school_id", "grade", "name"], classes)
        progress = Progress("pupils", len(students), quiet)
        boolean = (lambda b: "t" if b else "f") if loader.pg else int
        loader.load("students", ["id", "school_id", "class_id", "student_number", "name", "grade", "active",
                                 "pass_version", "created_at"],
                    ((i, s, c, f"S{i:08d}", f"学生{i}", g, boolean(a), 1, "2026-08-20 00:00:00")
                     for i, s, c, g, a in students), progress)
        progress.finish()
        venues = []
        for v in range(1, self.n_venues + 1):
            district = (v - 1) % self.n_districts + 1
            kind = VENUE_KINDS[rng.randrange(len(VENUE_KINDS))]
            level = "district" if kind == "campus" else VENUE_LEVELS[rng.randrange(len(VENUE_LEVELS))]
            venues.append((v, f"场馆{v}（{kind}）", kind, level, district))
            entry = (v, kind, level)
            self.venues_by_district.setdefault(district, []).append(entry)
            self.all_venues.append(entry)
        loader.load("venues", ["id", "name", "kind", "level", "district_id", "active", "created_at"],
                    [(v, n, k, lv, d, "t" if loader.pg else 1, "2026-08-01 00:00:00") for v, n, k, lv, d in venues])
        timings["city"] = time.perf_counter() - started
        return {"districts": self.n_districts, "schools": self.n_schools, "classes": class_id,
                "students": self.n_students, "venues": self.n_venues, **timings}

    def entries(self, target: int, first_id: int):
        """Yield `target` ledger rows (tuples in LEDGER_COLUMNS order), pupil by pupil."""
        rng = self.rng
        weights = self.student_weight
        total_weight = sum(weights)
        days = {year: [(date(int(year[:4]), 9, 1) + timedelta(days=i)) for i in range(365)] for year in (YEAR, PREVIOUS)}
        day_text = {year: [d.isoformat() for d in ds] for year, ds in days.items()}
        day_term = {year: [1 if d.month >= 9 or d.month == 1 else 2 for d in ds] for year, ds in days.items()}
        kinds = [k for k, w, _ in ACTIVITY_MIX for _ in range(w)]
        amounts = {k: a for k, _, a in ACTIVITY_MIX}
        entry_id = first_id
        produced = 0
        scale = target / total_weight
        for index, weight in enumerate(weights):
            if produced >= target:
                break
            expected = weight * scale
            n = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
            if index == len(weights) - 1:
                n = target - produced
            n = min(n, target - produced)
            sid = index + 1
            district = self.student_district[index]
            local = self.venues_by_district.get(district) or self.all_venues
            for _ in range(n):
                year = PREVIOUS if rng.random() < 0.1 else YEAR
                d = rng.randrange(365)
                occurred = f"{day_text[year][d]} {rng.randrange(1, 11):02d}:{rng.randrange(60):02d}:00"
                term = day_term[year][d]
                r = rng.random()
                seq = self.next_seq[index]
                self.next_seq[index] = seq + 1
                if r < 0.85 or r >= 0.9 and r < 0.96:
                    kind = kinds[rng.randrange(100)]
                    venue = local[rng.randrange(len(local))] if rng.random() < 0.7 else \
                        self.all_venues[rng.randrange(len(self.all_venues))]
                    multiplier = 0.5 if venue[1] == "campus" else LEVEL_MULTIPLIER[venue[2]]
                    base = amounts[kind]
                    cents = int(base[rng.randrange(len(base))] * multiplier + 0.5)
                    reversal = r >= 0.9
                    yield (entry_id, sid, seq, "reversal" if reversal else "credit", -cents if reversal else cents, kind,
                           None, "checkin", None, None, None, venue[0], occurred, year, term, "sz-2025", "{}",
                           occurred, None, "-", "-")
                elif r < 0.9:
                    cents = (50, 100, 150, 300, 500)[rng.randrange(5)]
                    yield (entry_id, sid, seq, "credit", cents, None, "青少年科技创新大赛", "claim", None, None, None,
                           None, occurred, year, term, "sz-2025", "{}", occurred, None, "-", "-")
                else:
                    cents = rng.choice((-200, -100, -50, 50, 100, 200))
                    yield (entry_id, sid, seq, "adjustment", cents, None, None, "manual", None, None, None, None,
                           occurred, year, term, "sz-2025", "{}", occurred, None, "-", "-")
                entry_id += 1
                produced += 1


LEDGER_COLUMNS = ["id", "student_id", "seq", "kind", "amount", "activity_kind", "competition", "source", "source_id",
                  "unique_key", "reverses_id", "venue_id", "occurred_at", "school_year", "term", "rule_version",
                  "explanation", "created_at", "created_by", "prev_hash", "hash"]


# --------------------------------------------------------------------------------------------------
# Query shapes


def shapes(district_id: int) -> list[tuple[str, str, str, dict]]:
    """(name, who, path, query) — who is "city" or "district"."""
    credits, venues = "/api/v1/stats/credits", "/api/v1/stats/venues"
    return [
        ("district", "city", credits, {"group_by": "district"}),
        ("school", "city", credits, {"group_by": "school"}),
        ("grade", "city", credits, {"group_by": "grade"}),
        ("school,grade (district officer)", "district", credits, {"group_by": "school,grade"}),
        ("activity_kind", "city", credits, {"group_by": "activity_kind"}),
        ("venue_kind", "city", credits, {"group_by": "venue_kind"}),
        ("month", "city", credits, {"group_by": "month"}),
        ("district,month", "city", credits, {"group_by": "district,month"}),
        ("activity_kind,month", "city", credits, {"group_by": "activity_kind,month"}),
        ("school,month (district officer)", "district", credits, {"group_by": "school,month"}),
        ("grade, district_id filter", "city", credits, {"group_by": "grade", "district_id": district_id}),
        ("school, grade=5 filter", "city", credits, {"group_by": "school", "grade": 5}),
        ("venues", "city", venues, {}),
        ("venues by month", "city", venues, {"group_by": "month"}),
        ("school,grade csv (city)", "city", credits, {"group_by": "school,grade", "format": "csv"}),
    ]


def time_queries(client, headers: dict, district_id: int, runs: int, warmup: int) -> list[dict]:
    results = []
    for name, who, path, query in shapes(district_id):
        query = {"school_year": YEAR, **query}
        times = []
        rows = None
        for i in range(warmup + runs):
            started = time.perf_counter()
            response = client.get(path, query_string=query, headers=headers[who])
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"{name}: HTTP {response.status_code} {response.get_data(as_text=True)[:300]}")
            if i >= warmup:
                times.append(elapsed)
            if rows is None:
                rows = len(response.json["items"]) if response.is_json else response.data.count(b"\n") - 1
        times.sort()
        p95 = times[math.ceil(0.95 * len(times)) - 1]  # nearest rank
        results.append({"shape": name, "rows": rows, "p50": statistics.median(times), "p95": p95, "max": times[-1]})
        log(f"    {name:<34} rows {rows:>6}   p50 {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms")
    return results


def time_appends(app, n: int, n_students: int, seed: int) -> dict:
    """The hot path at this size: ledger.append for random pupils — rolled back, then committed — and
    the refresh that folds the committed entries into the roll-ups (what the next statistics answer,
    or `flask stats refresh` from cron, does; one sample). A scan's append only queues its entry
    (a trigger on ledger_entries); refresh() folds the queue."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from app.credits import ledger
    from app.extensions import db
    from app.stats import rollup

    rng = random.Random(seed)
    occurred = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)

    def one(student_id):
        ledger.append(student_id=student_id, kind="adjustment", amount=Decimal("0.50"), source="manual",
                      activity_kind="lecture", occurred_at=occurred, rule_version="sz-2025",
                      explanation={"summary": "bench"})

    out = {}
    touched: set[int] = set()
    if n <= 0:
        return {}, touched
    with app.app_context():
        times = []
        for _ in range(n):
            sid = rng.randrange(1, n_students + 1)
            started = time.perf_counter()
            one(sid)
            db.session.flush()
            times.append((time.perf_counter() - started) * 1000)
            db.session.rollback()
        out["append (rolled back)"] = times
        times = []
        for _ in range(n):
            sid = rng.randrange(1, n_students + 1)
            touched.add(sid)
            started = time.perf_counter()
            one(sid)
            db.session.commit()
            times.append((time.perf_counter() - started) * 1000)
        out["append + commit"] = times
        started = time.perf_counter()
        rollup.refresh()
        out[f"refresh folding {n} entries"] = [(time.perf_counter() - started) * 1000]
        db.session.remove()
    summary = {}
    for label, times in out.items():
        times.sort()
        summary[label] = {"p50": statistics.median(times), "p95": times[math.ceil(0.95 * len(times)) - 1]}
        log(f"    {label:<34} p50 {summary[label]['p50']:8.2f} ms   p95 {summary[label]['p95']:8.2f} ms")
    return summary, touched


# --------------------------------------------------------------------------------------------------


def make_app(url: str):
    from app import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url, "RATELIMIT_ENABLED": False, "TESTING": True,
                       "PASSWORD_HASH_TIME_COST": 1, "PASSWORD_HASH_MEMORY_KIB": 8})


def reset_schema(app, url: str) -> None:
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context():
        if url.startswith("postgresql"):
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
                name = conn.execute(text("SELECT current_database()")).scalar()
                # Sorting and hashing the roll-up rebuild in memory; per database, nobody else's.
                conn.execute(text(f'ALTER DATABASE "{name}" SET work_mem = \'256MB\''))
                conn.execute(text(f'ALTER DATABASE "{name}" SET maintenance_work_mem = \'512MB\''))
        import logging

        logging.getLogger("alembic").setLevel(logging.WARNING)
        upgrade(directory=str(ROOT / "migrations"), revision="heads")
        db.session.remove()
        db.engine.dispose()  # new connections pick up the database settings


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="default: a temporary SQLite file with --tiny, else required")
    parser.add_argument("--tiny", action="store_true", help="a few thousand entries (what CI runs)")
    parser.add_argument("--districts", type=int, default=10)
    parser.add_argument("--schools", type=int, default=1000)
    parser.add_argument("--students", type=int, default=1_000_000)
    parser.add_argument("--venues", type=int, default=300)
    parser.add_argument("--entries", default="2000000,20000000", help="comma-separated cumulative sizes")
    parser.add_argument("--runs", type=int, default=20, help="timed requests per query shape")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--appends", type=int, default=200, help="hot-path appends timed per size")
    parser.add_argument("--check", action="store_true", help="also run the from-scratch check at each size")
    parser.add_argument("--check-max", type=int, default=None, help="… but only at sizes up to this many entries")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--force", action="store_true", help="allow a database whose name lacks 'bench'")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the existing bench database: only time the queries and the hot path (and --check)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.districts, args.schools, args.students, args.venues = 2, 8, 600, 12
        if args.entries == parser.get_default("entries"):
            args.entries = "1500,4000"
        args.runs, args.warmup, args.appends = min(args.runs, 5), 1, min(args.appends, 20)
    url = args.database_url
    tmp = None
    if url is None:
        if not args.tiny:
            parser.error("--database-url is required for the full city (a PostgreSQL database named bench_…)")
        tmp = tempfile.mkdtemp(prefix="city-scale-")
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
    if "bench" not in url.rsplit("/", 1)[-1] and not args.force and tmp is None:
        parser.error(f"refusing to rebuild {url}: its database name must contain 'bench' (or pass --force)")
    sizes = [int(s) for s in args.entries.split(",")]

    os.environ.setdefault("APP_ENV", "development")
    app = make_app(url)
    if args.reuse:
        return reuse(app, args)
    log(f"city_scale: {url.split('@')[-1]}  districts {args.districts}, schools {args.schools}, pupils {args.students}, "
        f"entries {', '.join(_human(s) for s in sizes)}")
    t0 = time.perf_counter()
    reset_schema(app, url)
    log(f"  schema (migrations) {time.perf_counter() - t0:.1f}s")

    from sqlalchemy import text

    from app.auth.models import User
    from app.auth.passwords import hash_password
    from app.extensions import db
    from app.stats import rollup

    results: dict = {"database": db_kind(url), "sizes": [], "city": None}
    with app.app_context():
        loader = Loader(db.engine)
        city = City(args.districts, args.schools, args.students, args.venues, args.seed)
        t0 = time.perf_counter()
        results["city"] = city.build(loader, args.quiet)
        if loader.pg:
            with db.engine.begin() as conn:
                for table in ("districts", "schools", "classes", "students", "venues"):
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                      f"(SELECT MAX(id) FROM {table}))"))
                conn.execute(text("ANALYZE"))
        log(f"  city loaded in {time.perf_counter() - t0:.1f}s: {json.dumps({k: v for k, v in results['city'].items() if k != 'city'})}")
        officers = {
            "city": User(username="bench-city", password_hash=hash_password("bench-password"), role="city_officer"),
            "district": User(username="bench-district", password_hash=hash_password("bench-password"),
                             role="district_officer", district_id=1),
        }
        db.session.add_all(officers.values())
        db.session.commit()
        db.session.remove()

    loaded = 0
    next_id = 0
    for size in sizes:
        step = {"entries": size}
        with app.app_context():
            progress = Progress("ledger entries", size - loaded, args.quiet)
            count = loader.load("ledger_entries", LEDGER_COLUMNS, city.entries(size - loaded, next_id + 1), progress)
            step["load_s"] = progress.finish()
            loaded += count
            if loader.pg:
                with db.engine.begin() as conn:
                    conn.execute(text("SELECT setval(pg_get_serial_sequence('ledger_entries', 'id'), "
                                      "(SELECT MAX(id) FROM ledger_entries))"))
                    conn.execute(text("ANALYZE ledger_entries"))
            log(f"  {_human(loaded)} entries loaded in {step['load_s']:.1f}s "
                f"({_human(count / max(step['load_s'], 1e-9))} rows/s)")
            t0 = time.perf_counter()

            def say(message: str, started: float = t0) -> None:
                if not args.quiet:
                    log(f"    rebuild {time.perf_counter() - started:7.1f}s  {message}")

            counts = rollup.rebuild(progress_cb=say)
            db.session.commit()
            step["rebuild_s"] = time.perf_counter() - t0
            step["rollup_rows"] = counts
            log(f"  roll-ups rebuilt in {step['rebuild_s']:.1f}s: {json.dumps(counts)}")
            if loader.pg:
                settle(db.engine)
            step["sizes"] = table_sizes(db, loader.pg)
            db.session.remove()
        client = app.test_client()
        log(f"  query shapes at {_human(loaded)} entries ({args.runs} timed runs each):")
        step["queries"] = time_queries(client, officer_headers(app), 1, args.runs, args.warmup)
        log("  hot path (one entry; then the refresh that folds them):")
        step["appends"], touched = time_appends(app, args.appends, city.n_students, args.seed + loaded)
        with app.app_context():  # the generator continues after what the timed appends wrote
            for sid, seq in db.session.execute(text(
                    f"SELECT student_id, MAX(seq) FROM ledger_entries WHERE student_id IN "
                    f"({', '.join(str(i) for i in sorted(touched)) or '0'}) GROUP BY student_id")):
                city.next_seq[sid - 1] = seq + 1
            next_id = db.session.execute(text("SELECT COALESCE(MAX(id), 0) FROM ledger_entries")).scalar()
            db.session.remove()
        if args.check and (args.check_max is None or size <= args.check_max):
            with app.app_context():
                t0 = time.perf_counter()
                report = rollup.check()
                db.session.rollback()
                step["check"] = {"ok": report.ok, "seconds": time.perf_counter() - t0,
                                 "differences": report.differences}
                log(f"  from-scratch check: {'OK' if report.ok else 'DIFFERENT'} in {step['check']['seconds']:.1f}s")
                if not report.ok:
                    raise SystemExit(json.dumps(report.as_dict(), ensure_ascii=False)[:2000])
                db.session.remove()
        results["sizes"].append(step)

    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, ensure_ascii=False, indent=2))
    return results


def officer_headers(app) -> dict:
    """Fresh bearer tokens for the bench's two officers (a long rebuild outlives an access token)."""
    from sqlalchemy import select

    from app.auth.models import User
    from app.auth.tokens import issue_tokens
    from app.extensions import db

    with app.app_context():
        headers = {}
        for who in ("city", "district"):
            user = db.session.scalar(select(User).where(User.username == f"bench-{who}"))
            headers[who] = {"Authorization": f"Bearer {issue_tokens(user)['access_token']}"}
        db.session.remove()
    return headers


def settle(engine) -> None:
    """Before timing, leave the database as autovacuum keeps a live one: the tables the answers, the
    timed appends and the refresh read vacuumed (visibility map set, so index-only scans stay
    index-only) and analysed, and the
    gigabytes the load and the rebuild dirtied written out (CHECKPOINT), instead of being flushed
    by the checkpointer during the timed requests — the first full run's 20 M column was timed
    while that was going on."""
    from sqlalchemy import text

    t0 = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) stats_cells, stats_district_cells, stats_venue_cells, "
                          "stats_venue_districts, stats_population, stats_dirty, stats_state, "
                          "stats_student_cells, stats_students, ledger_entries"))
        try:
            conn.execute(text("CHECKPOINT"))
        except Exception as exc:  # CHECKPOINT needs a superuser or pg_checkpoint
            log(f"  (no CHECKPOINT: {exc.__class__.__name__})")
    log(f"  settled (VACUUM ANALYZE, CHECKPOINT) in {time.perf_counter() - t0:.1f}s")


def reuse(app, args) -> dict:
    """Time the query shapes and the hot path on the bench database as it is."""
    from sqlalchemy import text

    from app.extensions import db
    from app.stats import rollup

    with app.app_context():
        entries = db.session.execute(text("SELECT COUNT(*) FROM ledger_entries")).scalar()
        students = db.session.execute(text("SELECT COUNT(*) FROM students")).scalar()
        pg = db.engine.dialect.name == "postgresql"
        step = {"entries": entries, "load_s": 0.0, "rebuild_s": 0.0, "sizes": table_sizes(db, pg)}
        rollup.refresh()
        db.session.remove()
    log(f"city_scale --reuse: {_human(entries)} entries, {students} pupils")
    log(f"  query shapes ({args.runs} timed runs each):")
    step["queries"] = time_queries(app.test_client(), officer_headers(app), 1, args.runs, args.warmup)
    log("  hot path (one entry; then the refresh that folds them):")
    step["appends"], _ = time_appends(app, args.appends, students, args.seed + entries)
    if args.check:
        with app.app_context():
            t0 = time.perf_counter()
            report = rollup.check()
            db.session.rollback()
            step["check"] = {"ok": report.ok, "seconds": time.perf_counter() - t0, "differences": report.differences}
            log(f"  from-scratch check: {'OK' if report.ok else 'DIFFERENT'} in {step['check']['seconds']:.1f}s")
    results = {"database": "PostgreSQL" if pg else "SQLite", "city": None, "sizes": [step]}
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, ensure_ascii=False, indent=2))
    return results


def db_kind(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgresql") else "SQLite"


def table_sizes(db, pg: bool) -> dict:
    from sqlalchemy import text

    if not pg:
        return {}
    names = ("ledger_entries", "stats_student_cells", "stats_cells", "stats_venue_cells", "stats_district_cells",
             "stats_venue_districts")
    return {n: db.session.execute(text(f"SELECT pg_size_pretty(pg_total_relation_size('{n}'))")).scalar()
            for n in names}


def print_table(results: dict) -> None:
    sizes = results["sizes"]
    if not sizes:
        return
    head = " | ".join(f"p50 / p95 @ {_human(s['entries'])}" for s in sizes)
    log("")
    log(f"| query shape | rows | {head} | p95 ratio |")
    log("|---|---:|" + "---:|" * len(sizes) + "---:|")
    for i, first in enumerate(sizes[0]["queries"]):
        cells = " | ".join(f"{s['queries'][i]['p50']:.0f} / {s['queries'][i]['p95']:.0f} ms" for s in sizes)
        ratio = sizes[-1]["queries"][i]["p95"] / max(first["p95"], 1e-9)
        log(f"| {first['shape']} | {sizes[-1]['queries'][i]['rows']} | {cells} | {ratio:.2f} |")
    log("")
    for s in sizes:
        appends = "; ".join(f"{k} p50 {v['p50']:.2f} / p95 {v['p95']:.2f} ms" for k, v in s["appends"].items())
        log(f"- {_human(s['entries'])} entries: loaded in {s['load_s']:.0f}s, roll-ups rebuilt in {s['rebuild_s']:.0f}s; "
            f"{appends}" + (f"; sizes {json.dumps(s['sizes'])}" if s.get("sizes") else ""))


if __name__ == "__main__":
    main()
