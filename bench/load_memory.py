#!/usr/bin/env python3
"""Where a worker's memory goes under the Monday mix: one process, no gunicorn, tracemalloc on.

    .venv/bin/python bench/load_memory.py                       # SQLite, one worker's share (25,000)
    .venv/bin/python bench/load_memory.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_load_mem

bench/load.py measures worker RSS under gunicorn from the outside; this replays the same city and
the same request mix (bench/load.prepare and write_requests, the two wrk threads' files
interleaved) through the app's test client in this one process — what a single gunicorn worker
would serve of a --city-requests run — and reports at every tenth: RSS and anonymous RSS, the Python
heap as tracemalloc sees it, what SQLite holds, with --trim the RSS once glibc has returned its free
pages (malloc_trim), the transcript cache (entries, bytes of bodies, bytes of the objects
around them), SQLAlchemy's compiled-statement cache and the largest object counts by type; then the
allocation sites that grew most over the second half. Python-level growth (tracemalloc) against RSS
growth tells a leak in Python objects from memory held in C (SQLite's page cache, malloc arenas).
tracemalloc costs time and memory of its own: compare this run's figures with each other only.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import re
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import THREADS, needed_pupils, prepare, write_requests  # noqa: E402


def rss_mb() -> tuple[float, float]:
    fields = {line.split(":")[0]: int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
              if line.startswith(("VmRSS:", "RssAnon:"))}
    return fields["VmRSS"] / 1024, fields["RssAnon"] / 1024


def sqlite_memory_kb() -> float | None:
    """What SQLite itself holds (page caches, statements), from the library _sqlite3 is linked to."""
    try:
        library = ctypes.CDLL("libsqlite3.so.0")
    except OSError:
        return None
    library.sqlite3_memory_used.restype = ctypes.c_int64
    return library.sqlite3_memory_used() / 1024


def trimmed_rss_mb() -> float:
    """RSS after glibc hands its free pages back (malloc_trim): memory still in use, without what
    the allocator keeps after frees."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_mb()[0]


def cache_state(app) -> dict:
    from app.extensions import db
    from app.transcripts.service import entries_cache

    items = list(entries_cache._items.values())
    bodies = sum(len(v.body) for v in items)
    overhead = sum(sys.getsizeof(v) + sys.getsizeof(v.body) - len(v.body) + sys.getsizeof(v.last_hash)
                   for v in items) + sys.getsizeof(entries_cache._items)
    with app.app_context():
        compiled = len(db.engine._compiled_cache)
    return {"transcripts": len(items), "bodies_kb": bodies / 1024, "objects_kb": overhead / 1024,
            "compiled": compiled}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--requests", type=int, default=25_000, help="requests replayed here (default 25,000)")
    parser.add_argument("--city-requests", type=int, default=100_000,
                        help="the bench/load.py run whose city and mix are replayed (default 100,000)")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--frames", type=int, default=1,
                        help="frames tracemalloc keeps per allocation (default 1: fast; 8 shows who calls)")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (the SQLite file, request files)")
    parser.add_argument("--trim", action="store_true",
                        help="at each tenth also give glibc's free pages back (malloc_trim) and read RSS again")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="load-memory-"))
    url = args.database_url or f"sqlite:///{work / 'load.sqlite3'}"
    if url.startswith("postgresql") and not re.search(r"bench|load", urlsplit(url).path):
        raise SystemExit("the PostgreSQL database is dropped and rebuilt: its name must contain 'bench' or 'load'")
    print(f"preparing the city of a {args.city_requests:,}-request run in {work} …", flush=True)
    data = prepare(url, needed_pupils(args.city_requests), 0.25, args.seed)
    app = data["app"]
    with app.app_context():
        from datetime import UTC, datetime

        from app.credits.rules import local_date, school_year_of

        data["school_year"] = school_year_of(local_date(datetime.now(UTC)))
    write_requests(work, data, args.city_requests, 16, args.seed)
    files = [(work / f"requests.{t}").read_text().splitlines()[1:] for t in range(THREADS)]
    lines = [line for pair in zip(*files, strict=False) for line in pair][:args.requests]
    client = app.test_client()
    tracemalloc.start(args.frames)
    marks = {round(len(lines) * k / 10) for k in range(1, 11)}
    half = None
    statuses = Counter()
    started = time.perf_counter()
    print(f"{'requests':>9}{'RSS MB':>8}{'anon MB':>8}{'trimmed':>8}{'traced MB':>10}{'sqlite KB':>10}"
          f"{'transcripts':>12}{'bodies KB':>10}{'objects KB':>11}{'compiled':>9}   largest counts", flush=True)

    def report(done: int):
        gc.collect()
        rss, anon = rss_mb()
        trimmed = trimmed_rss_mb() if args.trim else float("nan")
        sqlite_kb = sqlite_memory_kb()
        traced = tracemalloc.get_traced_memory()[0] / 2**20
        cache = cache_state(app)
        kinds = Counter(type(o).__name__ for o in gc.get_objects()).most_common(4)
        print(f"{done:>9}{rss:>8.1f}{anon:>8.1f}{trimmed:>8.1f}{traced:>10.1f}"
              f"{sqlite_kb if sqlite_kb is not None else float('nan'):>10.0f}{cache['transcripts']:>12}{cache['bodies_kb']:>10.0f}"
              f"{cache['objects_kb']:>11.0f}{cache['compiled']:>9}   "
              f"{', '.join(f'{k} {n}' for k, n in kinds)}", flush=True)

    report(0)
    for done, line in enumerate(lines, 1):
        cls, method, token, path, *body = line.split(" ", 4)
        response = client.open(path, method=method, headers={"Authorization": f"Bearer {token}"},
                               data=body[0] if body else None, content_type="application/json" if body else None)
        statuses[cls, response.status_code] += 1
        response.close()
        if done in marks:
            report(done)
            if done == len(lines) // 2 or (half is None and done >= len(lines) // 2):
                half = tracemalloc.take_snapshot()
    end = tracemalloc.take_snapshot()
    print(f"{len(lines):,} requests in {time.perf_counter() - started:.0f} s; answers {dict(statuses)}")
    print(f"\nallocation sites that grew most over the second half (top {args.top}):")
    for stat in end.compare_to(half, "lineno")[:args.top]:
        frame = stat.traceback[0]
        print(f"  {stat.size_diff / 1024:+9.1f} KB {stat.count_diff:+7d} blocks  {frame.filename}:{frame.lineno}")
    if args.frames > 1:
        print("\nby traceback, the largest growth:")
    for stat in end.compare_to(half, "traceback")[:3] if args.frames > 1 else ():
        print(f"  {stat.size_diff / 1024:+9.1f} KB {stat.count_diff:+7d} blocks")
        for frame in stat.traceback.format()[-12:]:
            print(f"      {frame}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
