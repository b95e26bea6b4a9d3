"""Roster-import benchmark: how long a whole school district's roster takes to go through
POST /api/v1/schools/{id}/students/import.

Builds an app on a throwaway database (a temporary SQLite file by default, or --database-url),
migrates it, creates a district, a school and its admin, generates an N-row CSV in memory
(Chinese headers 学号,姓名,年级,班级; about 40 classes over grades 1–9) and posts it through the
app's test client three times:

  1. first import         every row created (and the classes with them)
  2. re-import            the same file: nothing created or updated (idempotent)
  3. 1 % renamed          the same file with every hundredth name changed: those rows updated

Exits 1 when the first import takes 60 s or more, or when any run's counts are wrong.

    .venv/bin/python bench/import_roster.py                      # 50,000 rows, temp SQLite
    .venv/bin/python bench/import_roster.py --rows 10000
    .venv/bin/python bench/import_roster.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench

With --database-url the schema is migrated in place (`flask db upgrade`, harmless when current) and
the rows the benchmark created are deleted afterwards unless --keep is given; a temporary SQLite
file is removed unless --keep is given.
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LIMIT_SECONDS = 60.0
CLASSES = 40
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "子涵梓轩浩宇欣怡一诺雨桐思远嘉怡俊杰佳琪宇航明哲诗涵语嫣博文晨曦若溪天佑可馨亦凡安琪景行书瑶"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000, help="roster rows to generate (default 50000)")
    parser.add_argument("--database-url", default=None,
                        help="SQLAlchemy URL of the database to use (default: a temporary SQLite file)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary SQLite file / the created rows afterwards")
    return parser.parse_args(argv)


def build_roster(rows: int, seed: int = 2025) -> tuple[bytes, list[tuple[str, str, int, str]]]:
    """N roster rows (student number, name, grade, class) and the CSV bytes for them."""
    rng = random.Random(seed)
    classes = [((c % 9) + 1, f"{(c % 9) + 1}年级({c // 9 + 1})班") for c in range(CLASSES)]
    records = []
    for i in range(rows):
        grade, klass = classes[i % CLASSES]
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        records.append((f"B{i + 1:07d}", name, grade, klass))
    return to_csv(records), records


def to_csv(records) -> bytes:
    lines = ["学号,姓名,年级,班级", *(f"{number},{name},{grade},{klass}" for number, name, grade, klass in records)]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def make_app(database_url: str):
    from app import create_app
    from config.settings import Testing

    class BenchConfig(Testing):
        TESTING = False
        SQLALCHEMY_DATABASE_URI = database_url
        MAX_CONTENT_LENGTH = 512 * 1024 * 1024

    return create_app(BenchConfig)


def set_up(app) -> tuple[int, str, dict]:
    """Migrate; create a district, a school and its admin. Returns (school id, district code, headers)."""
    from flask_migrate import upgrade

    from app.auth.models import User
    from app.auth.passwords import hash_password
    from app.auth.tokens import issue_tokens
    from app.extensions import db
    from app.orgs.models import District, School

    tag = uuid.uuid4().hex[:8]
    with app.app_context():
        upgrade()
        district = District(name="基准测试区", code=f"BENCH-{tag}")
        db.session.add(district)
        db.session.flush()
        school = School(name=f"基准测试学校 {tag}", district_id=district.id, pilot=False)
        db.session.add(school)
        db.session.flush()
        admin = User(username=f"bench_admin_{tag}", password_hash=hash_password("bench-password-1"),
                     role="school_admin", school_id=school.id, display_name="基准测试管理员")
        db.session.add(admin)
        db.session.commit()
        headers = {"Authorization": f"Bearer {issue_tokens(admin)['access_token']}"}
        school_id, code = school.id, district.code
        db.session.remove()
    return school_id, code, headers


def clean_up(app, school_id: int, district_code: str) -> None:
    """Delete what set_up and the imports created (for a database the caller named)."""
    from sqlalchemy import delete

    from app.auth.models import User
    from app.extensions import db
    from app.orgs.models import District, School, SchoolClass, Student

    with app.app_context():
        db.session.execute(delete(User).where(User.school_id == school_id))
        db.session.execute(delete(Student).where(Student.school_id == school_id))
        db.session.execute(delete(SchoolClass).where(SchoolClass.school_id == school_id))
        db.session.execute(delete(School).where(School.id == school_id))
        db.session.execute(delete(District).where(District.code == district_code))
        db.session.commit()
        db.session.remove()


def timed_import(client, school_id: int, headers: dict, data: bytes) -> tuple[float, dict]:
    import io

    started = time.perf_counter()
    response = client.post(
        f"/api/v1/schools/{school_id}/students/import",
        data={"file": (io.BytesIO(data), "roster.csv")},
        headers=headers,
        content_type="multipart/form-data",
    )
    elapsed = time.perf_counter() - started
    body = response.get_json(silent=True) or {}
    if response.status_code != 200:
        raise SystemExit(f"import answered {response.status_code}: {str(body)[:500]}")
    return elapsed, body


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.disable(logging.INFO)  # the app and Alembic log at INFO; the table is what matters here
    tmpdir = None
    url = args.database_url
    if url is None:
        tmpdir = tempfile.mkdtemp(prefix="bench-roster-")
        url = f"sqlite:///{Path(tmpdir) / 'bench.sqlite3'}"

    app = make_app(url)
    school_id, district_code, headers = set_up(app)
    started = time.perf_counter()
    data, records = build_roster(args.rows)
    generate_s = time.perf_counter() - started
    renamed = [(n, name + "改" if i % 100 == 0 else name, g, k) for i, (n, name, g, k) in enumerate(records)]
    expected_renamed = len(range(0, len(records), 100))

    client = app.test_client()
    runs = []
    try:
        first_s, first = timed_import(client, school_id, headers, data)
        runs.append(("first import", first_s, first, {"created": args.rows, "updated": 0}))
        again_s, again = timed_import(client, school_id, headers, data)
        runs.append(("re-import", again_s, again, {"created": 0, "updated": 0}))
        change_s, change = timed_import(client, school_id, headers, to_csv(renamed))
        runs.append(("1 % renamed", change_s, change, {"created": 0, "updated": expected_renamed}))
    finally:
        if args.database_url and not args.keep:
            clean_up(app, school_id, district_code)
        if tmpdir and not args.keep:
            shutil.rmtree(tmpdir, ignore_errors=True)

    backend = url.split(":", 1)[0].split("+", 1)[0]
    print(f"\nroster import benchmark — {args.rows:,} rows, {CLASSES} classes, {backend}, "
          f"CSV {len(data) / 1024 / 1024:.1f} MiB (generated in {generate_s:.2f} s)")
    print(f"{'run':<14} {'seconds':>8} {'rows/s':>9} {'created':>8} {'updated':>8} {'unchanged':>9}  ok")
    failed = False
    for label, seconds, body, expected in runs:
        ok = all(body.get(key) == value for key, value in expected.items()) and not body.get("errors")
        failed |= not ok
        print(f"{label:<14} {seconds:>8.2f} {args.rows / seconds:>9,.0f} {body.get('created', '?'):>8} "
              f"{body.get('updated', '?'):>8} {body.get('unchanged', '?'):>9}  {'yes' if ok else 'NO'}")
    if tmpdir and args.keep:
        print(f"database kept: {url}")
    if first_s >= LIMIT_SECONDS:
        print(f"FAIL: the first import took {first_s:.1f} s (limit {LIMIT_SECONDS:.0f} s)")
        return 1
    if failed:
        print("FAIL: an import answered unexpected counts")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
