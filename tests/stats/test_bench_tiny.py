"""bench/city_scale.py keeps working: the whole bench at a tiny size, on its own SQLite file.

The full city (1 M pupils, 20 M entries) is run by hand on PostgreSQL (docs/stats.md); this runs the
same code path — generation, set-based rebuild, every query shape over HTTP, the hot path and the
from-scratch check — with a few thousand entries. A subprocess, because the bench builds its own app
and database and must not share the test session.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_city_scale_bench_runs_at_a_tiny_size(tmp_path):
    out = tmp_path / "bench.json"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "city_scale.py"), "--tiny", "--quiet", "--check", "--runs", "2",
         "--appends", "5", "--database-url", f"sqlite:///{tmp_path / 'bench.sqlite3'}", "--force",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results = json.loads(out.read_text())
    assert [s["entries"] for s in results["sizes"]] == [1500, 4000]
    for size in results["sizes"]:
        assert size["check"]["ok"] is True
        assert len(size["queries"]) == 15 and all(q["rows"] > 0 for q in size["queries"])
        assert size["rollup_rows"]["stats_students"] == results["city"]["students"]
    assert "| query shape |" in completed.stdout
