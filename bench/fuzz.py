#!/usr/bin/env python3
"""Fuzz the OpenAPI document at depth: the harness of tests/fuzz with thousands of examples.

    bench/fuzz.sh                                         # SQLite (a fresh file in a temp dir)
    bench/fuzz.sh --database-url postgresql+psycopg://postgres@127.0.0.1:5432/h_fuzz
    bench/fuzz.sh --examples 3 --roles student,teacher    # a quicker look

Every role (and anonymous) gets its own school world and fuzzes every operation, positive and
negative cases, `--examples` per operation and mode (~1,100 requests per role at the default 7), in
process (WSGI), inside one transaction rolled back at the end. The PostgreSQL database is emptied and
migrated first. Prints the number of examples, the 5xx count, the schema-violation count (answers
with an undeclared status or content type, or a body that does not match its schema), the statuses
seen, and each distinct problem with a curl command; exits 1 when there is any.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import fresh_app  # noqa: E402
from tests.fuzz import harness  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a fresh SQLite file)")
    parser.add_argument("--examples", type=int, default=7, help="examples per operation and mode (default 7)")
    parser.add_argument("--roles", default=",".join(harness.ROLES), help="comma-separated (default: all)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ledger-fuzz-"))
    url = args.database_url or f"sqlite:///{tmp / 'fuzz.sqlite3'}"
    app = fresh_app(url, TESTING=True, EVIDENCE_DIR=str(tmp / "evidence"),
                    PASSWORD_HASH_TIME_COST=1, PASSWORD_HASH_MEMORY_KIB=8)
    roles = [role for role in args.roles.split(",") if role]
    tally = harness.Tally()
    started = time.monotonic()
    with app.app_context():
        schema = harness.load_schema(app)
        operations = len(harness.operations(schema))
        print(f"fuzzing {operations} operations × {len(roles)} roles × 2 modes × ≤{args.examples} examples "
              f"on {url.split('://')[0]}", flush=True)
        for role in roles:
            before, t0 = tally.examples, time.monotonic()
            harness.fuzz_role(app, schema, role, max_examples=args.examples, tally=tally)
            print(f"  {role:<17} {tally.examples - before:>6} examples  {time.monotonic() - t0:6.1f} s", flush=True)
    elapsed = time.monotonic() - started

    print()
    print(f"examples           {tally.examples}  ({tally.examples / elapsed:.0f}/s, {elapsed:.0f} s)")
    print(f"5xx                {tally.server_errors}")
    print(f"schema violations  {tally.schema_violations}")
    print(f"statuses           {', '.join(f'{s}: {n}' for s, n in sorted(tally.statuses.items()))}")
    unreached = tally.unreached()
    print(f"never 2xx          {len(unreached)} operation(s)" + (f": {', '.join(unreached)}" if unreached else ""))
    if tally.findings:
        print(f"\n{len(tally.findings)} distinct problem(s):\n")
        print(tally.report())
    return 1 if tally.findings else 0


if __name__ == "__main__":
    sys.exit(main())
