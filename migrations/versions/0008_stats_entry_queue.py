"""stats: queue every new ledger entry for the roll-ups (a trigger) instead of folding it in the append

The append path (every exit scan) no longer reads or writes the roll-up tables: the trigger adds
the entry to stats_dirty in the append's transaction, and app.stats.rollup.refresh folds the queue
before statistics are answered. Existing entries are already folded, so nothing is queued here.

Revision ID: 0008_stats_entry_queue
Revises: 0007_bookings
"""

from alembic import op

revision = "0008_stats_entry_queue"
down_revision = "0007_bookings"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        # stats_mark_dirty(kind) comes from 0005_stats: INSERT INTO stats_dirty (kind, NEW.id).
        op.execute(
            "CREATE TRIGGER stats_entry_appended AFTER INSERT ON ledger_entries "
            "FOR EACH ROW EXECUTE FUNCTION stats_mark_dirty('entry')"
        )
    else:
        op.execute(
            "CREATE TRIGGER stats_entry_appended AFTER INSERT ON ledger_entries "
            "BEGIN INSERT OR IGNORE INTO stats_dirty (kind, ref_id) VALUES ('entry', NEW.id); END"
        )


def downgrade():
    # The old append path folded each entry itself and knows no "entry" queue: recompute the
    # roll-ups from the ledger (which empties the queue) so nothing queued is lost.
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS stats_entry_appended ON ledger_entries")
    else:
        op.execute("DROP TRIGGER IF EXISTS stats_entry_appended")
    from sqlalchemy.orm import Session

    from app.stats.rollup import rebuild_with_connection

    rebuild_with_connection(Session(bind=bind))
