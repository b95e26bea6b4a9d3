"""Transcript benchmark: GET /api/v1/students/{id}/transcript (JSON and ?format=pdf) for a pupil
with a long year on the ledger.

Builds an app on a throwaway database with bench/common.fresh_app (a temporary SQLite file by
default, or --database-url), and gives one grade-8 pupil ENTRIES ledger entries (default 500) written
by the real crediting code: stays of every activity kind at venues of every level over the school
year 2025-2026 (credits.service.credit_stay) and a few approved competition awards (credit_claim).
Then, in this one process, through the app's test client and as the pupil's class teacher (so every
read also writes its audit entry), each line timed on its own:

  * JSON, repeated reads (--runs, default 200): the ledger does not change, so the credential is
    reused and the year's entries come from the per-process cache — a pupil refreshing the page;
  * JSON, first read after a new entry (--append-runs, default 100): before each timed read (not
    counted) one more stay is credited through credits.service.credit_stay and committed, as a scan
    does; the read then signs and stores a new credential and extends the cached entries — the
    pupil who checks the transcript right after a scan, the figure that matters;
  * JSON, first read in a fresh worker (--pdf-runs): the per-process cache emptied before each
    read (a worker that has never served this pupil, or a restart); the credential is reused;
  * the PDF, repeated reads and first read after a new entry (--pdf-runs each, default 50).

The pupil's year therefore grows from ENTRIES to ENTRIES + append-runs + pdf-runs entries during the
run (the line's entry count is printed). A few warm-up requests (first signing key, font
registration) are not counted. Prints p50, p95 and max wall time per line, and the CPU time of the
process too (what a machine shared with other work hides: compare the two), and exits 1 when a
wall-time p95 is over its target (JSON 25 ms, PDF 250 ms).

    .venv/bin/python bench/transcript.py
    .venv/bin/python bench/transcript.py --entries 1000 --runs 500
    .venv/bin/python bench/transcript.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_transcript

With --database-url the database is rebuilt from the migrations (PostgreSQL: its public schema is
dropped; the database name must contain "bench") and the rows are left behind; a temporary SQLite
file is removed unless --keep is given.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fresh_app  # noqa: E402

TARGET_JSON_MS = 25.0
TARGET_PDF_MS = 250.0
YEAR = "2025-2026"
KINDS = ("visit", "lecture", "workshop", "research", "volunteer")
LEVELS = ("national", "provincial", "city", "district")
MINUTES = {"visit": 95, "lecture": 50, "workshop": 75, "research": 200, "volunteer": 130}
START = datetime(2025, 9, 2, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--entries", type=int, default=500, help="ledger entries of the pupil (default 500)")
    parser.add_argument("--runs", type=int, default=200, help="timed repeated JSON reads (default 200)")
    parser.add_argument("--append-runs", type=int, default=100,
                        help="timed JSON reads, each right after a new entry (default 100)")
    parser.add_argument("--pdf-runs", type=int, default=50,
                        help="timed PDF reads of each kind, and JSON reads with the cache emptied (default 50)")
    parser.add_argument("--database-url", default=None,
                        help="SQLAlchemy URL (default: a temporary SQLite file); rebuilt from the migrations")
    parser.add_argument("--keep", action="store_true", help="keep the temporary SQLite file")
    return parser.parse_args(argv)


class Year:
    """The bench pupil's school year on the ledger, written by the real crediting code."""

    def __init__(self, district_id: int, pupil_id: int, teacher_id: int):
        self.district_id, self.pupil_id, self.teacher_id = district_id, pupil_id, teacher_id
        self.venues: list = []
        self.activities: dict = {}
        self.stays = 0

    def stay(self, day: int) -> None:
        """Credit one more completed stay (credits.service.credit_stay, as a scan's exit does), on day
        `day` of the year; a new venue every third stay (at most 3 credited stays per venue and term)."""
        from app.checkins.models import Checkin
        from app.credits.service import credit_stay
        from app.extensions import db
        from app.venues.models import Activity, Venue

        n = self.stays
        self.stays += 1
        if n % 3 == 0:
            venue = Venue(name=f"科普教育基地 {len(self.venues) + 1} 号馆", kind="science_base",
                          level=LEVELS[len(self.venues) % 4], district_id=self.district_id)
            db.session.add(venue)
            db.session.flush()
            self.venues.append(venue.id)
        kind = KINDS[n % len(KINDS)]
        key = (self.venues[-1], kind)
        if key not in self.activities:
            activity = Activity(venue_id=self.venues[-1], kind=kind, title=f"科普教育基地·{kind} 科普活动",
                                theme="人工智能", starts_at=START, ends_at=START + timedelta(days=360),
                                min_minutes=30, grades=list(range(1, 10)))
            db.session.add(activity)
            db.session.flush()
            self.activities[key] = activity.id
        entered = START + timedelta(days=day, hours=(n % 2) * 4)
        stay = Checkin(student_id=self.pupil_id, activity_id=self.activities[key], venue_id=self.venues[-1],
                       entered_at=entered, exited_at=entered + timedelta(minutes=MINUTES[kind]),
                       deadline=entered + timedelta(hours=10), minutes=MINUTES[kind], source="staff",
                       status="completed", flags=[])
        db.session.add(stay)
        db.session.flush()
        credit_stay(stay, actor_id=None)

    def claim(self, n: int) -> None:
        from app.credits.service import credit_claim
        from app.extensions import db
        from app.reviews.models import CompetitionClaim

        claim = CompetitionClaim(
            student_id=self.pupil_id, competition=f"青少年科技创新大赛（第 {n + 1} 届）", level=LEVELS[n % 4],
            award=("first", "second", "third", "participation")[n % 4], work_title=f"作品 {n + 1}",
            work_key=f"work-{n + 1}", awarded_on=date(2025, 11, 1) + timedelta(days=n * 7),
            evidence_name="证书.png", evidence_path="none", evidence_type="image/png",
            evidence_sha256="0" * 64, status="approved", submitted_by=self.teacher_id)
        db.session.add(claim)
        db.session.flush()
        credit_claim(claim, actor_id=self.teacher_id)

    def count(self) -> int:
        from app.credits.models import LedgerEntry
        from app.extensions import db

        return db.session.query(LedgerEntry).filter_by(student_id=self.pupil_id, school_year=YEAR).count()


def set_up(app, entries: int) -> tuple[Year, dict]:
    """A school, a class, a pupil with `entries` ledger entries, their teacher. Returns (the pupil's
    Year, the teacher's Authorization header)."""
    from app.auth.models import TeacherClass, User
    from app.auth.passwords import hash_password
    from app.auth.tokens import issue_tokens
    from app.extensions import db
    from app.orgs.models import District, School, SchoolClass, Student

    tag = uuid.uuid4().hex[:8]
    with app.app_context():
        district = District(name="基准测试区", code=f"BENCH-{tag}")
        db.session.add(district)
        db.session.flush()
        school = School(name=f"深圳市基准测试中学 {tag}", district_id=district.id, pilot=True)
        db.session.add(school)
        db.session.flush()
        klass = SchoolClass(school_id=school.id, grade=8, name=f"八年级(3)班 {tag}")
        db.session.add(klass)
        db.session.flush()
        pupil = Student(school_id=school.id, class_id=klass.id, grade=8, student_number=f"B{tag}",
                        name="欧阳思远", pass_version=1)
        teacher = User(username=f"bench_teacher_{tag}", password_hash=hash_password("bench-password-1"),
                       role="teacher", school_id=school.id, display_name="基准测试教师")
        db.session.add_all([pupil, teacher])
        db.session.flush()
        db.session.add(TeacherClass(user_id=teacher.id, class_id=klass.id))
        year = Year(district.id, pupil.id, teacher.id)
        claims = max(1, entries // 50)
        for n in range(entries - claims):
            year.stay((n * 360) // entries)
        for n in range(claims):
            year.claim(n)
        db.session.commit()
        if (written := year.count()) != entries:
            raise SystemExit(f"expected {entries} entries, wrote {written}")
        headers = {"Authorization": f"Bearer {issue_tokens(teacher)['access_token']}"}
        db.session.remove()
    return year, headers


def timed(client, url: str, headers: dict, runs: int, warmup: int = 3, before=None):
    """((wall ms, CPU ms) per request, last body); `before` runs ahead of each request, untimed. The
    CPU time shows what a busy machine hides."""
    for _ in range(warmup):
        client.get(url, headers=headers)
    samples, cpu, body = [], [], b""
    for _ in range(runs):
        if before is not None:
            before()
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get(url, headers=headers)
        body = response.get_data()
        samples.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}: {body[:300]!r}")
    return (samples, cpu), body


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[94]


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.disable(logging.INFO)
    tmpdir = None
    url = args.database_url
    if url is None:
        tmpdir = tempfile.mkdtemp(prefix="bench-transcript-")
        url = f"sqlite:///{Path(tmpdir) / 'bench.sqlite3'}"
    elif url.startswith("postgresql") and "bench" not in url.rsplit("/", 1)[-1]:
        raise SystemExit(f"refusing to rebuild {url}: its database name must contain 'bench'")
    app = fresh_app(url, PUBLIC_BASE_URL="https://ledger.example.test")
    lines = []
    try:
        started = time.perf_counter()
        year, headers = set_up(app, args.entries)
        setup_s = time.perf_counter() - started
        client = app.test_client()
        base = f"/api/v1/students/{year.pupil_id}/transcript?school_year={YEAR}"
        from app.extensions import db
        from app.transcripts.service import entries_cache

        def new_entry() -> None:  # one more credited stay, committed, as a scan's exit writes it
            with app.app_context():
                year.stay(300 + year.stays % 40)
                db.session.commit()

        def measure(label, url_, runs, target, before=None):
            with app.app_context():
                first = year.count()
            result, body = timed(client, url_, headers, runs, before=before)
            with app.app_context():
                last = year.count()
            lines.append((label, result, target, body, f"{first}" if first == last else f"{first}–{last}"))
            return body

        json_body = measure("JSON, repeated reads", base, args.runs, TARGET_JSON_MS)
        measure("JSON, first read after a new entry", base, args.append_runs, TARGET_JSON_MS, before=new_entry)
        measure("JSON, fresh worker (cache emptied)", base, args.pdf_runs, None, before=entries_cache.clear)
        pdf_body = measure("PDF, repeated reads", base + "&format=pdf", args.pdf_runs, TARGET_PDF_MS)
        measure("PDF, first read after a new entry", base + "&format=pdf", args.pdf_runs, TARGET_PDF_MS,
                before=new_entry)
    finally:
        if tmpdir and not args.keep:
            shutil.rmtree(tmpdir, ignore_errors=True)

    from pypdf import PdfReader

    data = json.loads(json_body)
    pages = len(PdfReader(io.BytesIO(pdf_body)).pages)
    backend = url.split(":", 1)[0].split("+", 1)[0]
    print(f"\ntranscript benchmark — one pupil, {len(data['entries'])} ledger entries at first ({YEAR}, total "
          f"{data['total']}, JSON {len(json_body) / 1024:.0f} KiB), {lines[-1][4].split('–')[-1]} at the end (PDF "
          f"{len(pdf_body) / 1024:.0f} KiB, {pages} pages); {backend}, single process (test client), reader = class "
          f"teacher (audited); set-up {setup_s:.1f} s")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (wall times suffer when it is high)")
    print(f"{'request':<38} {'entries':>8} {'runs':>5} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'cpu p50':>8} "
          f"{'cpu p95':>8} {'target':>7}  ok")
    failed = False
    for label, (samples, cpu), target, _body, entries in lines:
        ok = target is None or p95(samples) <= target
        failed |= not ok
        print(f"{label:<38} {entries:>8} {len(samples):>5} {statistics.median(samples):>7.1f} {p95(samples):>7.1f} "
              f"{max(samples):>7.1f} {statistics.median(cpu):>8.1f} {p95(cpu):>8.1f} {target or '(info)':>7}  "
              f"{'yes' if ok else 'NO'}")
    if tmpdir and args.keep:
        print(f"database kept: {url}")
    if failed:
        print("FAIL: a p95 is over its target")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
