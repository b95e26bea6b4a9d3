#!/usr/bin/env bash
# The Monday-morning mix (bench/load.py) on SQLite, then on PostgreSQL where it answers on 127.0.0.1.
# Arguments go to both runs (e.g. --requests 4000). The PostgreSQL database (LOAD_PG_DATABASE,
# default bench_load) is created if missing and rebuilt from the migrations: never point it at a
# database you want to keep. A run bounded by request count, so each takes as long as the machine
# needs for --requests (100,000 by default: tens of minutes on a shared 2-core machine).
set -euo pipefail
cd "$(dirname "$0")/.."
db="${LOAD_PG_DATABASE:-bench_load}"
status=0
.venv/bin/python bench/load.py "$@" || status=$?
if pg_isready -h 127.0.0.1 -q 2>/dev/null; then
  psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE $db" >/dev/null
  .venv/bin/python bench/load.py --database-url "postgresql+psycopg://postgres@127.0.0.1:5432/$db" "$@" || status=$?
else
  echo "PostgreSQL does not answer on 127.0.0.1: SQLite only" >&2
fi
exit $status
