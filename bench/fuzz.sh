#!/usr/bin/env bash
# Schemathesis fuzzing of the OpenAPI document at depth (bench/fuzz.py): SQLite by default,
# PostgreSQL with --database-url postgresql+psycopg://… (that database is emptied and migrated).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python bench/fuzz.py "$@"
