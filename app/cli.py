"""Flask commands: seed-demo, users, ledger, rules, checkins."""

from __future__ import annotations

import json
import sys

import click
from flask import Flask
from flask.cli import AppGroup


def register_cli(app: Flask) -> None:
    """Attach every command group to the app."""
    users = AppGroup("users", help="Manage accounts.")
    ledger_cli = AppGroup("ledger", help="Check the tamper-evident ledger.")
    rules_cli = AppGroup("rules", help="Credit rule-set versions.")
    checkins_cli = AppGroup("checkins", help="Check-in housekeeping.")

    @users.command("create-admin")
    @click.argument("username")
    @click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
    def create_admin(username: str, password: str) -> None:
        """Create an admin account (password from --password or a prompt)."""
        from sqlalchemy import select

        from app.auth.models import User
        from app.auth.passwords import hash_password
        from app.extensions import db

        if db.session.scalar(select(User).where(User.username == username)):
            raise click.ClickException(f"user {username!r} already exists")
        if len(password) < 8:
            raise click.ClickException("the password must have at least 8 characters")
        db.session.add(User(username=username, password_hash=hash_password(password), role="admin"))
        db.session.commit()
        click.echo(f"admin {username} created")

    @ledger_cli.command("verify")
    def ledger_verify() -> None:
        """Recompute every student's hash chain; exit 1 naming each break."""
        from app.credits.ledger import verify_all

        chains = entries = broken = 0
        for report in verify_all():
            chains += 1
            entries += report.entries
            if not report.ok:
                broken += 1
                click.echo(f"BROKEN student {report.student_id}: first bad seq {report.first_bad_seq}", err=True)
        click.echo(f"{chains} chains, {entries} entries, {broken} broken")
        if broken:
            sys.exit(1)

    @rules_cli.command("load")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False))
    @click.option("--activate", is_flag=True, help="Make it the active rule set at once.")
    def rules_load(path: str, activate: bool) -> None:
        """Load a rule file (YAML or JSON) as a new version."""
        from app.credits.rules import RuleSetError, load_rule_file
        from app.credits.service import add_rule_version
        from app.errors import APIError
        from app.extensions import db

        try:
            rules = load_rule_file(path)
            row = add_rule_version(rules.document, activate=activate)
        except RuleSetError as exc:
            raise click.ClickException("invalid rule file:\n" + json.dumps(exc.errors, ensure_ascii=False, indent=2)) from None
        except APIError as exc:
            raise click.ClickException(f"{exc.message} {json.dumps(exc.details, ensure_ascii=False)}") from None
        db.session.commit()
        click.echo(f"rule set {row.version} loaded{' and activated' if activate else ''}")

    @rules_cli.command("recompute")
    @click.argument("version")
    @click.option("--school-year", required=True, help="e.g. 2025-2026")
    def rules_recompute(version: str, school_year: str) -> None:
        """Write adjustments so every pupil's year equals VERSION's result (idempotent)."""
        from app.credits import recompute
        from app.credits.service import active_rules, rules_by_version

        rules = rules_by_version(version)
        with click.progressbar(length=0, label="recomputing pupils", show_pos=True) as bar:
            written = recompute.recompute(rules, active_rules(), school_year, actor_id=None, progress_cb=bar.update)
        click.echo(f"{written} adjustment entries written")

    @rules_cli.command("activate")
    @click.argument("version")
    def rules_activate(version: str) -> None:
        """Make VERSION the rule set that computes new credits."""
        from app.credits.models import RuleVersion
        from app.credits.service import activate_version
        from app.extensions import db

        row = db.session.get(RuleVersion, version)
        if row is None:
            raise click.ClickException(f"no rule version {version!r}")
        activate_version(row)
        db.session.commit()
        click.echo(f"rule set {version} is active")

    @checkins_cli.command("expire")
    def checkins_expire() -> None:
        """Mark stays left open past their deadline as 未签退 (no_exit); run it nightly from cron."""
        from app.checkins.service import expire_all
        from app.extensions import db

        count = expire_all()
        db.session.commit()
        click.echo(f"{count} stays marked no_exit")

    @app.cli.command("seed-demo")
    def seed_demo() -> None:
        """Create (or complete) the demo city and print its logins; safe to run again. Refused in
        production (APP_ENV=production): its accounts share the published password demo1234."""
        from flask import current_app

        from app.seed import seed_demo as run

        if current_app.config.get("PRODUCTION"):
            click.echo("seed-demo 不能在生产环境运行：演示账号使用公开的密码 demo1234。 "
                       "(refused: APP_ENV=production)", err=True)
            sys.exit(1)
        run(click.echo)

    for group in (users, ledger_cli, rules_cli, checkins_cli):
        app.cli.add_command(group)
    _register_keys_cli(app)
    from app.stats.cli import register as register_stats_cli

    register_stats_cli(app)


def _register_keys_cli(app: Flask) -> None:
    """`flask keys rotate|list`: the Ed25519 keys that sign transcript credentials."""
    keys_cli = AppGroup("keys", help="Transcript credential signing keys.")

    @keys_cli.command("rotate")
    def keys_rotate() -> None:
        """Add a new signing key and retire the current one (it stays published in the JWKS)."""
        from app.extensions import db
        from app.transcripts import keys

        new, retired = keys.rotate()
        db.session.commit()
        click.echo(f"signing with {new.kid}" + (f"; retired {', '.join(retired)}" if retired else ""))

    @keys_cli.command("list")
    def keys_list() -> None:
        """Every signing key, newest first, with when it was created and retired."""
        from sqlalchemy import select

        from app.extensions import db
        from app.transcripts.models import SigningKey

        for row in db.session.scalars(select(SigningKey).order_by(SigningKey.created_at.desc())):
            state = f"retired {row.retired_at.isoformat()}" if row.retired_at else "signing"
            click.echo(f"{row.kid}  created {row.created_at.isoformat()}  {state}")

    app.cli.add_command(keys_cli)
