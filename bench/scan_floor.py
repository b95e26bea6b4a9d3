#!/usr/bin/env python3
"""How far the scan could go in this stack: the real scan and a scan with no glue, against the bare
endpoint, in one run (ratios, not seconds).

    .venv/bin/python bench/scan_floor.py                       # SQLite (a temp file)
    .venv/bin/python bench/scan_floor.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench

bench/checkin_load.py asks whether scans reach a share of the bare endpoint's throughput. This
asks what share is reachable at all. It serves bench/floor_app.py — the app unchanged plus POST
/bench/floor-scan, which verifies the token and the pass and runs the real scan's SQL on a raw
DBAPI connection with nothing else around it (read its docstring) — with the same gunicorn
settings as checkin_load, and runs wrk three times at the same concurrency: the bare GET /healthz,
real scans (POST /api/v1/checkins) and floor scans, each pupil entering then leaving; on
PostgreSQL also the floor's statements sent in three round trips (psycopg pipeline mode) instead of
eleven. The floor's
ratio is a ceiling for any scan written in Flask with this app's request hooks, these statements
and this driver on this machine; the real scan's ratio says how much of it the app's code keeps.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.checkin_load import LUA, build_database, run_wrk, write_bodies  # noqa: E402
from bench.common import start_server, stop_server  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--students", type=int, default=12000, help="per scan run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--port", type=int, default=5079)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="scan-floor-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}"
    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    runs = [("real", "/api/v1/checkins"), ("floor", "/bench/floor-scan")]
    if backend == "PostgreSQL":
        runs.append(("floor, 3 round trips", "/bench/floor-scan-pipelined"))
    print(f"preparing {len(runs) * args.students} students on {backend} …", flush=True)
    data = build_database(url, len(runs) * args.students)
    passes = data["passes"]
    bodies = {}
    for i, (name, _path) in enumerate(runs):
        chunk = passes[i * args.students:(i + 1) * args.students]
        bodies[name] = workdir / f"run{i}.jsonl"
        bodies[name].with_suffix(".count").write_text(str(write_bodies(
            bodies[name], chunk, data["activity_id"], block=400, threads=args.threads)))
    script = workdir / "scans.lua"
    script.write_text(LUA)

    base = f"http://127.0.0.1:{args.port}"
    server = start_server(url, args.workers, args.port, app="bench.floor_app:app", BENCH_FLOOR="1")
    results = {}
    try:
        run_wrk(f"{base}/healthz", args.connections, args.threads, 3)  # warm-up
        results["bare GET /healthz"] = run_wrk(f"{base}/healthz", args.connections, args.threads, args.duration)
        for name, path in runs:
            result = run_wrk(base, args.connections, args.threads, args.duration, script,
                             [str(bodies[name]), str(args.threads), data["token"], path])
            if result["requests"] > int(bodies[name].with_suffix(".count").read_text()):
                print(f"warning: the {name} run sent more requests than prepared bodies; raise --students",
                      file=sys.stderr)
            results[f"{name}: POST {path}"] = result
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
        broken = sum(not report.ok for report in verify_all())  # the floor's entries are real links too

    bare = results["bare GET /healthz"]["rps"]
    print()
    print(f"scan_floor on {backend}: gunicorn {args.workers} workers, wrk {args.connections} connections, "
          f"{args.duration}s per run, {os.cpu_count()} CPUs")
    print(f"{'endpoint':<52}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'÷ bare':>9}")
    for name, r in results.items():
        print(f"{name:<52}{r['rps']:>9.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
              f"{r['non_2xx'] + r['socket_errors']:>9}{r['rps'] / bare:>9.2f}")
    print(f"after the runs: {completed} completed stays, {entries} ledger entries, {broken} broken chains")
    errors = sum(r["non_2xx"] + r["socket_errors"] for r in results.values())
    return 0 if errors == 0 and completed == entries and broken == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
