#!/usr/bin/env python3
"""Where one scan's time goes, in-process (no server, no network): statements and CPU time per scan.

    .venv/bin/python bench/profile_scan.py [--database-url URL] [--pairs 300] [--profile out.prof]

Builds the same database as bench/checkin_load.py, then sends entry+exit pairs through the real
endpoint with Flask's test client, counting SQL statements per request by kind and timing each
request. With --profile it writes a cProfile file of the exits (read it with `python -m pstats`).
Compare figures of one run only: the machine is shared.
"""

from __future__ import annotations

import argparse
import cProfile
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COUNTED = 20  # pupils whose scans are counted statement by statement (not timed)
sys.path.insert(0, str(ROOT))

from bench.checkin_load import build_database  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url")
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--profile", help="write a cProfile of the exit scans here")
    parser.add_argument("--show-sql", action="store_true", help="print the statements of one entry and one exit")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='profile-scan-')}/bench.sqlite3"
    data = build_database(url, args.pairs + 5 + COUNTED)
    app = data["app"]
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import event

    from app.extensions import db

    client = app.test_client()
    headers = {"Authorization": f"Bearer {data['token']}"}
    now = datetime.now(UTC)
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    # A cursor listener sends app.db.Prepared statements through SQLAlchemy's own execution (listeners
    # get a real context), so statements are counted in a pass of their own, not in the timed one.
    def _count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    def send(token, direction, at):
        body = {"student_pass": token, "activity_id": data["activity_id"], "direction": direction,
                "scanned_at": at.isoformat()}
        started = time.process_time()
        response = client.post("/api/v1/checkins", json=body, headers=headers)
        elapsed = time.process_time() - started
        assert response.status_code == 201, response.get_json()
        return elapsed

    def bare():
        started = time.process_time()
        response = client.get("/healthz")
        elapsed = time.process_time() - started
        assert response.status_code == 200
        return elapsed

    passes = data["passes"]
    # warm up: caches, prepared statements
    for token in passes[:5]:
        send(token, "entry", now - timedelta(minutes=55))
        send(token, "exit", now - timedelta(minutes=5))
    results = {}
    profiler = cProfile.Profile() if args.profile else None
    counted = passes[5 + args.pairs:5 + args.pairs + COUNTED]
    for direction, at in (("entry", now - timedelta(minutes=55)), ("exit", now - timedelta(minutes=5))):
        times, kinds = [], Counter()
        for token in passes[5:5 + args.pairs]:
            if profiler and direction == "exit":
                profiler.enable()
            times.append(send(token, direction, at))
            if profiler and direction == "exit":
                profiler.disable()
        event.listen(engine, "before_cursor_execute", _count)
        for i, token in enumerate(counted):
            statements.clear()
            send(token, direction, at)
            kinds.update(s.split(None, 1)[0].upper() for s in statements)
            if args.show_sql and i == 0:
                print(f"--- {direction}: {len(statements)} statements")
                for s in statements:
                    print("   ", " ".join(s.split())[:160])
        event.remove(engine, "before_cursor_execute", _count)
        results[direction] = (times, kinds)
    bare_times = [bare() for _ in range(args.pairs)]
    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"profile_scan on {backend}, {args.pairs} pairs, in-process test client, CPU time of this process "
          f"(the database server's own CPU is not counted)")
    print(f"  bare: mean {statistics.mean(bare_times) * 1000:6.2f} ms  median {statistics.median(bare_times) * 1000:6.2f} ms")
    for direction, (times, kinds) in results.items():
        per = {k: v / COUNTED for k, v in sorted(kinds.items())}
        total = sum(per.values())
        print(f"{direction:>6}: mean {statistics.mean(times) * 1000:6.2f} ms  median "
              f"{statistics.median(times) * 1000:6.2f} ms  ({statistics.mean(times) / statistics.mean(bare_times):4.1f}× bare)"
              f"  statements/scan {total:4.1f}  "
              + " ".join(f"{k}={v:.1f}" for k, v in per.items()))
    if profiler:
        profiler.dump_stats(args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
