"""`flask stats …`: refresh, rebuild and check the roll-ups behind the bureau statistics."""

from __future__ import annotations

import json
import sys
import time

import click
from flask import Flask
from flask.cli import AppGroup

stats_cli = AppGroup("stats", help="Bureau statistics roll-ups.")


@stats_cli.command("refresh")
def stats_refresh() -> None:
    """Fold the ledger entries appended since the last refresh, count pupils and venues changed since
    they were counted, and recompute met counts after a rule-set activation. Every statistics request
    does this first; run it from cron every minute or so on a busy day to keep the queue short."""
    from app.stats import rollup

    started = time.perf_counter()
    report = rollup.refresh()
    click.echo(f"refreshed in {time.perf_counter() - started:.1f}s: {json.dumps(report.as_dict())}")


@stats_cli.command("rebuild")
def stats_rebuild() -> None:
    """Recompute every roll-up from the ledger (set-based; the tables are locked meanwhile)."""
    from app.extensions import db
    from app.stats import rollup

    started = time.perf_counter()
    counts = rollup.rebuild(progress_cb=lambda step: click.echo(f"  {time.perf_counter() - started:7.1f}s  {step}"))
    db.session.commit()
    click.echo(f"rebuilt in {time.perf_counter() - started:.1f}s: {json.dumps(counts)}")


@stats_cli.command("check")
def stats_check() -> None:
    """Recompute every roll-up from scratch and compare; exit 1 on any difference."""
    from app.extensions import db
    from app.stats import rollup

    started = time.perf_counter()
    rollup.refresh()
    db.session.commit()
    report = rollup.check(lock=not _one_snapshot())
    db.session.rollback()
    elapsed = time.perf_counter() - started
    if report.ok:
        click.echo(f"stats roll-ups equal a from-scratch computation over the ledger ({elapsed:.1f}s)")
        return
    click.echo(f"DIFFERENT ({elapsed:.1f}s): {json.dumps(report.differences)}", err=True)
    click.echo(json.dumps(report.samples, ensure_ascii=False, indent=2), err=True)
    sys.exit(1)


def _one_snapshot() -> bool:
    """PostgreSQL: run the check in one REPEATABLE READ snapshot instead of under the refresh lock,
    so statistics requests (which refresh first) are not held back for the minutes a city-wide
    check takes. False where that cannot be had (SQLite, whose read transaction is one snapshot
    anyway; a connection already inside an outer transaction, as in the tests)."""
    from sqlalchemy.exc import InvalidRequestError

    from app.extensions import db

    if db.engine.dialect.name != "postgresql":
        return False
    try:
        db.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    except InvalidRequestError:
        db.session.rollback()
        return False
    return True


def register(app: Flask) -> None:
    """Attach `flask stats` to the app."""
    app.cli.add_command(stats_cli)
