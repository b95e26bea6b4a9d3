#!/usr/bin/env bash
# The Monday-morning mix on SQLite, then on PostgreSQL where it answers (database bench_load).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python bench/load.py "$@"
if pg_isready -h 127.0.0.1 -q 2>/dev/null; then
  psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname = 'bench_load'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE bench_load" >/dev/null
  .venv/bin/python bench/load.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_load "$@"
fi
