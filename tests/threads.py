"""Real threads for the PostgreSQL race tests: each thread gets its own app context and session
(its own database connection, like a gunicorn worker), and all start together at a barrier."""

from __future__ import annotations

import threading

from app.extensions import db


def run_threads(app, work, count: int) -> list:
    """Run work(i) for i in range(count) at once; results in order; any exception fails the test."""
    barrier = threading.Barrier(count)
    results, errors = [None] * count, []

    def runner(i):
        with app.app_context():
            try:
                barrier.wait()
                results[i] = work(i)
            except Exception as exc:  # surfaced by the assertion below
                errors.append(repr(exc))
                db.session.rollback()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    return results
