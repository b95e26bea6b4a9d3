"""Faults against real servers on PostgreSQL (skipped elsewhere): two app servers racing on one
database, a worker killed mid-load, and the database dropping away under the app.

Every server here listens on 127.0.0.1 only, and every load loop is bounded.
"""

from __future__ import annotations

import json
import os
import select as io_select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.checkins.models import Checkin, Scan
from app.credits.ledger import verify_all
from app.credits.models import LedgerEntry
from app.db import utcnow
from app.extensions import db
from app.venues import codes
from tests import factories as f
from tests.conftest import DATABASE_URL, IS_POSTGRES

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not IS_POSTGRES, reason="fault tests need PostgreSQL (TEST_DATABASE_URL)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A gunicorn instance of the app on 127.0.0.1, stopped at the end."""

    def __init__(self, app, workers=2, database_url=DATABASE_URL):
        self.port = _free_port()
        env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": app.config["SECRET_KEY"],
               "SIGNING_KEY": app.config["SIGNING_KEY"], "APP_ENV": "development", "RATELIMIT_ENABLED": "0",
               "WEB_CONCURRENCY": str(workers), "LOG_LEVEL": "warning", "ACCESS_LOG": "0"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "config/gunicorn.py"),
             "--bind", f"127.0.0.1:{self.port}", "wsgi:app"],
            cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("gunicorn did not start: " + self.proc.stderr.read().decode()[-2000:])

    def workers(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)


def post(base, path, body, token, timeout=30):
    request = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except OSError:
        return None, None  # the connection died with its worker


def _world(app, pupils=1):
    with app.app_context():
        museum = f.venue()
        act = f.activity(museum, kind="visit", starts_at=utcnow() - timedelta(hours=3),
                         ends_at=utcnow() + timedelta(hours=5))
        staff = f.user("venue_staff", venues=[museum])
        students = [f.student(f.school_class(grade=5)) for _ in range(pupils)]
        token = f.bearer(staff)["Authorization"].split()[1]
        data = {"activity": act.id, "token": token,
                "passes": [(s.id, codes.student_pass(s.id, 1)) for s in students]}
        db.session.remove()
        return data


def _staff_body(world, index, direction, minutes_ago, nonce=None):
    _, token = world["passes"][index]
    return {"student_pass": token, "activity_id": world["activity"], "direction": direction,
            "scanned_at": (utcnow() - timedelta(minutes=minutes_ago)).isoformat(), "nonce": nonce or str(uuid.uuid4())}


def test_two_servers_one_database_duplicate_scans(app, committed):
    world = _world(app)
    first, second = Server(app), Server(app)
    try:
        entry = _staff_body(world, 0, "entry", 50)
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(lambda i: post((first, second)[i % 2].base, "/api/v1/checkins", entry,
                                                   world["token"]), range(100)))
        assert sorted(status for status, _ in answers) == [200] * 99 + [201]
        exits = [_staff_body(world, 0, "exit", 5) for _ in range(100)]
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(lambda i: post((first, second)[i % 2].base, "/api/v1/checkins", exits[i],
                                                   world["token"]), range(100)))
        assert [status for status, _ in answers].count(201) == 1
        assert {body["error"]["code"] for status, body in answers if status == 422} == {"not_checked_in"}
    finally:
        first.stop()
        second.stop()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Checkin)) == 1
        assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == 1
        assert all(r.ok for r in verify_all())


def test_worker_killed_during_load_loses_no_acknowledged_scan(app, committed):
    world = _world(app, pupils=120)
    server = Server(app, workers=3)
    acknowledged, lock = [], threading.Lock()

    def pupil_visit(i):
        for direction, ago in (("entry", 50), ("exit", 5)):
            body = _staff_body(world, i, direction, ago)
            status, _ = post(server.base, "/api/v1/checkins", body, world["token"])
            if status in (200, 201):
                with lock:
                    acknowledged.append(body["nonce"])

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(pupil_visit, i) for i in range(120)]
            time.sleep(0.5)
            victim = server.workers()[0]
            os.kill(victim, signal.SIGKILL)
            for fut in futures:
                fut.result()
    finally:
        server.stop()
    with app.app_context():
        stored = set(db.session.scalars(select(Scan.nonce).where(Scan.successful.is_(True))))
        assert set(acknowledged) <= stored  # every 2xx is durable
        completed = db.session.scalars(select(Checkin.id).where(Checkin.status == "completed")).all()
        credited = db.session.scalars(select(LedgerEntry.source_id).where(LedgerEntry.source == "checkin")).all()
        assert sorted(completed) == sorted(credited)  # nothing half-written: every completed stay has its entry
        assert len(acknowledged) > 100
        assert all(r.ok for r in verify_all())


class CuttableProxy:
    """A TCP proxy to PostgreSQL that can drop every connection and refuse new ones, then come back."""

    def __init__(self, target=("127.0.0.1", 5432)):
        self.target, self.port = target, _free_port()
        self.up = threading.Event()
        self.up.set()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.listener.settimeout(0.2)
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            if not self.up.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                ready, _, _ = io_select.select([a, b], [], [], 0.5)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        raise OSError
                    (b if sock is a else a).sendall(data)
        except OSError:
            for sock in (a, b):
                sock.close()

    def cut(self):
        self.up.clear()
        for a, b in self.pairs:
            for sock in (a, b):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.pairs.clear()

    def restore(self):
        self.up.set()

    def close(self):
        self.stopped = True
        self.cut()
        self.listener.close()


def test_database_outage_answers_503_and_recovers(app, committed):
    from app import create_app
    from tests.conftest import TestConfig

    proxy = CuttableProxy()
    proxied_url = DATABASE_URL.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    config = type("Proxied", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": proxied_url})
    outage_app = create_app(config)
    client = outage_app.test_client()
    try:
        assert client.get("/readyz").status_code == 200
        proxy.cut()
        down = [client.get("/readyz").status_code for _ in range(3)]
        api = client.post("/api/v1/auth/login", json={"username": "nobody", "password": "x" * 8})
        assert down == [503, 503, 503]
        assert api.status_code == 503 and api.json["error"]["code"] == "unavailable"
        assert api.headers["Retry-After"] == "5"
        proxy.restore()
        deadline = time.time() + 15
        while client.get("/readyz").status_code != 200 and time.time() < deadline:
            time.sleep(0.2)
        assert client.get("/readyz").status_code == 200
        assert client.post("/api/v1/auth/login", json={"username": "nobody", "password": "x" * 8}).status_code == 401
    finally:
        with outage_app.app_context():
            db.engine.dispose()
        proxy.close()
