"""SQLite writers queue on an flock beside the database file (app.db.QueuedWriterConnection): a
second writer waits until the first commits, a wait is bounded, a thread never waits for itself,
and the lock is released whichever thread ends the transaction."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from app.db import QueuedWriterConnection


def _connect(path, timeout=30.0):
    conn = sqlite3.connect(path, factory=QueuedWriterConnection, isolation_level=None, check_same_thread=False)
    conn.write_lock_path = f"{path}-writelock"
    conn.write_lock_timeout = timeout
    return conn


def _begin_write(conn):
    conn.acquire_write_lock()
    conn.execute("BEGIN IMMEDIATE")


@pytest.fixture()
def path(tmp_path):
    db = tmp_path / "queue.sqlite3"
    setup = sqlite3.connect(db)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (n INTEGER)")
    setup.close()
    return str(db)


def test_a_second_writer_waits_for_the_first_to_commit(path):
    first, second = _connect(path), _connect(path)
    _begin_write(first)
    first.execute("INSERT INTO t VALUES (1)")
    order = []

    def writer():
        _begin_write(second)
        order.append("second got the lock")
        second.execute("INSERT INTO t VALUES (2)")
        second.commit()

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.3)
    order.append("first commits")
    first.commit()
    thread.join(5)
    assert order == ["first commits", "second got the lock"]
    assert [r[0] for r in first.execute("SELECT n FROM t ORDER BY n")] == [1, 2]


def test_a_wait_is_bounded_like_sqlites_busy_timeout(path):
    holder, waiter = _connect(path), _connect(path, timeout=0.3)
    _begin_write(holder)
    outcome = {}

    def writer():  # a thread: the polling wait (the main thread uses SIGALRM, tested below)
        started = time.monotonic()
        try:
            waiter.acquire_write_lock()
        except sqlite3.OperationalError as exc:
            outcome["error"], outcome["waited"] = str(exc), time.monotonic() - started

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join(5)
    assert "database is locked" in outcome["error"] and 0.25 < outcome["waited"] < 2
    holder.rollback()


def test_the_main_thread_wait_is_bounded_too(path):
    holder, waiter = _connect(path), _connect(path, timeout=0.3)
    thread = threading.Thread(target=lambda: _begin_write(holder))
    thread.start()
    thread.join(5)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        waiter.acquire_write_lock()
    assert 0.25 < time.monotonic() - started < 2
    holder.rollback()


def test_a_thread_never_waits_for_its_own_lock(path):
    first, second = _connect(path), _connect(path)
    _begin_write(first)
    with pytest.raises(sqlite3.OperationalError, match="already holds"):
        second.acquire_write_lock()
    first.commit()
    _begin_write(second)  # free again once the first commits
    second.commit()


def test_a_rollback_from_another_thread_releases_for_the_acquiring_thread(path):
    conn = _connect(path)
    _begin_write(conn)
    thread = threading.Thread(target=conn.rollback)
    thread.start()
    thread.join(5)
    _begin_write(conn)  # the acquiring thread may write again
    conn.commit()


@pytest.mark.parametrize("ending", ["rollback", "close"])
def test_a_rollback_or_close_lets_the_next_writer_in(path, ending):
    first, second = _connect(path), _connect(path, timeout=1.0)
    _begin_write(first)
    first.execute("INSERT INTO t VALUES (1)")
    getattr(first, ending)()
    _begin_write(second)  # within a second, or "database is locked"
    second.execute("INSERT INTO t VALUES (2)")
    second.commit()
    assert [r[0] for r in second.execute("SELECT n FROM t")] == [2]


def _rows(conn):
    return conn.execute("SELECT COUNT(*) FROM t").fetchone()[0]


def test_checkpoints_run_after_the_write_lock_is_released(path, checkpoint_calls):
    """Every CHECKPOINT_EVERY-th write commit of the process copies the WAL back, once the flock is
    released (SQLite's own automatic checkpoint ran inside the commit, with writers queued behind)."""
    conn, other = _connect(path), _connect(path)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    seen = checkpoint_calls(3, lambda connection: (connection._locked, _rows(other)))
    for n in range(7):
        _begin_write(conn)
        conn.execute("INSERT INTO t VALUES (?)", (n,))
        conn.commit()
        conn.execute("BEGIN")  # a read-only transaction's commit: not counted
        conn.execute("SELECT COUNT(*) FROM t").fetchone()
        conn.commit()
    # after the 3rd and the 6th write commit (counting reads too would give the 2nd and the 4th),
    # with the lock released, and each copied back every frame the WAL held
    assert [probe for probe, _result in seen] == [(False, 3), (False, 6)]
    for _probe, (busy, frames, copied) in seen:
        assert busy == 0 and frames > 0 and copied == frames
    _begin_write(other)  # and nobody holds the write lock
    other.rollback()
