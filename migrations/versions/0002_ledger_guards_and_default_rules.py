"""ledger immutability triggers and the default rule set sz-2025

No code path updates or deletes a ledger entry; these triggers make the database refuse it too
(SPEC §6), on PostgreSQL and on SQLite alike. The default rule set is loaded from
config/rules/sz-2025.yaml and activated, so a fresh database can credit scans at once.

Revision ID: 0002_ledger_guards
Revises: 0001_schema
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002_ledger_guards"
down_revision = "0001_schema"
branch_labels = None
depends_on = None

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_entries_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries "
            "FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only()"
        )
        op.execute(
            "CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries "
            "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only: UPDATE refused'); END"
        )
        op.execute(
            "CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries "
            "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only: DELETE refused'); END"
        )

    from app.credits.rules import load_rule_file, default_rule_path

    rules = load_rule_file(default_rule_path())
    table = sa.table(
        "rule_versions",
        sa.column("version", sa.String),
        sa.column("effective_from", sa.Date),
        sa.column("document", sa.JSON),
        sa.column("active", sa.Boolean),
        sa.column("created_at", sa.DateTime),
        sa.column("activated_at", sa.DateTime),
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(
        table,
        [{"version": rules.version, "effective_from": rules.effective_from, "document": rules.document,
          "active": True, "created_at": now, "activated_at": now}],
    )


def downgrade():
    bind = op.get_bind()
    op.execute("DELETE FROM rule_versions WHERE version = 'sz-2025'")
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_truncate ON ledger_entries")
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_append_only ON ledger_entries")
        op.execute("DROP FUNCTION IF EXISTS ledger_entries_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_update")
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_delete")
