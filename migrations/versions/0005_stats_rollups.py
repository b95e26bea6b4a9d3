"""stats roll-ups: fine cells per pupil, aggregates per school/grade and per district, venue reach,
population, the queue of changed pupils, venues and schools (filled by triggers), and a backfill from
the ledger

Revision ID: 0005_stats
Revises: 0004_audit
"""

from alembic import op
import sqlalchemy as sa


revision = "0005_stats"
down_revision = "0004_audit"
branch_labels = None
depends_on = None

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION stats_mark_dirty() RETURNS trigger AS $$
BEGIN
    INSERT INTO stats_dirty (kind, ref_id) VALUES (TG_ARGV[0], NEW.id) ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""


def upgrade():
    op.create_table(
        "stats_cells",
        sa.Column("school_year", sa.String(length=9), nullable=False),
        sa.Column("grain", sa.SmallInteger(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("grade", sa.SmallInteger(), nullable=False),
        sa.Column("activity_kind", sa.String(length=16), nullable=False),
        sa.Column("venue_kind", sa.String(length=32), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("participating", sa.Integer(), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("met", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("school_year", "grain", "school_id", "grade", "activity_kind", "venue_kind", "month",
                                name=op.f("pk_stats_cells")),
    )
    op.create_table(
        "stats_district_cells",
        sa.Column("school_year", sa.String(length=9), nullable=False),
        sa.Column("grain", sa.SmallInteger(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("grade", sa.SmallInteger(), nullable=False),
        sa.Column("activity_kind", sa.String(length=16), nullable=False),
        sa.Column("venue_kind", sa.String(length=32), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("participating", sa.Integer(), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("met", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("school_year", "grain", "district_id", "grade", "activity_kind", "venue_kind", "month",
                                name=op.f("pk_stats_district_cells")),
    )
    op.create_table(
        "stats_venue_districts",
        sa.Column("school_year", sa.String(length=9), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("students", sa.Integer(), nullable=False),
        sa.Column("checkins", sa.Integer(), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("schools", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("school_year", "month", "venue_id", "district_id", name=op.f("pk_stats_venue_districts")),
    )
    op.create_table(
        "stats_dirty",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("ref_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "ref_id", name=op.f("pk_stats_dirty")),
    )
    op.create_table(
        "stats_population",
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("grade", sa.SmallInteger(), nullable=False),
        sa.Column("students", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("school_id", "grade", name=op.f("pk_stats_population")),
    )
    op.create_table(
        "stats_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("met_rule_version", sa.String(length=32), nullable=True),
        sa.Column("rebuilt_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stats_state")),
    )
    op.create_table(
        "stats_venue_cells",
        sa.Column("school_year", sa.String(length=9), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("students", sa.Integer(), nullable=False),
        sa.Column("checkins", sa.Integer(), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("school_year", "month", "venue_id", "school_id", name=op.f("pk_stats_venue_cells")),
    )
    op.create_table(
        "stats_student_cells",
        sa.Column("student_id", sa.Integer(), nullable=False),
        sa.Column("school_year", sa.String(length=9), nullable=False),
        sa.Column("activity_kind", sa.String(length=16), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("venue_kind", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("checkins", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("student_id", "school_year", "activity_kind", "venue_id", "month",
                                name=op.f("pk_stats_student_cells")),
    )
    op.create_table(
        "stats_students",
        sa.Column("student_id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("grade", sa.SmallInteger(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("student_id", name=op.f("pk_stats_students")),
    )

    # Pupils inserted or moved (school, grade, active), venues whose kind changes and schools moved to
    # another district are queued for app.stats.rollup.refresh, whatever wrote them: the ORM, a bulk
    # roster import or plain SQL.
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER stats_students_inserted AFTER INSERT ON students "
            "FOR EACH ROW EXECUTE FUNCTION stats_mark_dirty('student')"
        )
        op.execute(
            "CREATE TRIGGER stats_students_changed AFTER UPDATE OF school_id, grade, active ON students FOR EACH ROW "
            "WHEN (OLD.school_id IS DISTINCT FROM NEW.school_id OR OLD.grade IS DISTINCT FROM NEW.grade "
            "OR OLD.active IS DISTINCT FROM NEW.active) EXECUTE FUNCTION stats_mark_dirty('student')"
        )
        op.execute(
            "CREATE TRIGGER stats_venues_changed AFTER UPDATE OF kind ON venues FOR EACH ROW "
            "WHEN (OLD.kind IS DISTINCT FROM NEW.kind) EXECUTE FUNCTION stats_mark_dirty('venue')"
        )
        op.execute(
            "CREATE TRIGGER stats_schools_moved AFTER UPDATE OF district_id ON schools FOR EACH ROW "
            "WHEN (OLD.district_id IS DISTINCT FROM NEW.district_id) EXECUTE FUNCTION stats_mark_dirty('school')"
        )
    else:
        op.execute(
            "CREATE TRIGGER stats_students_inserted AFTER INSERT ON students "
            "BEGIN INSERT OR IGNORE INTO stats_dirty (kind, ref_id) VALUES ('student', NEW.id); END"
        )
        op.execute(
            "CREATE TRIGGER stats_students_changed AFTER UPDATE OF school_id, grade, active ON students "
            "WHEN OLD.school_id IS NOT NEW.school_id OR OLD.grade IS NOT NEW.grade OR OLD.active IS NOT NEW.active "
            "BEGIN INSERT OR IGNORE INTO stats_dirty (kind, ref_id) VALUES ('student', NEW.id); END"
        )
        op.execute(
            "CREATE TRIGGER stats_venues_changed AFTER UPDATE OF kind ON venues WHEN OLD.kind IS NOT NEW.kind "
            "BEGIN INSERT OR IGNORE INTO stats_dirty (kind, ref_id) VALUES ('venue', NEW.id); END"
        )
        op.execute(
            "CREATE TRIGGER stats_schools_moved AFTER UPDATE OF district_id ON schools "
            "WHEN OLD.district_id IS NOT NEW.district_id "
            "BEGIN INSERT OR IGNORE INTO stats_dirty (kind, ref_id) VALUES ('school', NEW.id); END"
        )

    # Backfill: fold the existing ledger into the roll-ups (a no-op on a fresh database).
    from sqlalchemy.orm import Session

    from app.stats.rollup import rebuild_with_connection

    rebuild_with_connection(Session(bind=bind))


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS stats_schools_moved ON schools")
        op.execute("DROP TRIGGER IF EXISTS stats_venues_changed ON venues")
        op.execute("DROP TRIGGER IF EXISTS stats_students_changed ON students")
        op.execute("DROP TRIGGER IF EXISTS stats_students_inserted ON students")
        op.execute("DROP FUNCTION IF EXISTS stats_mark_dirty()")
    else:
        op.execute("DROP TRIGGER IF EXISTS stats_schools_moved")
        op.execute("DROP TRIGGER IF EXISTS stats_venues_changed")
        op.execute("DROP TRIGGER IF EXISTS stats_students_changed")
        op.execute("DROP TRIGGER IF EXISTS stats_students_inserted")
    op.drop_table("stats_students")
    op.drop_table("stats_student_cells")
    op.drop_table("stats_venue_cells")
    op.drop_table("stats_state")
    op.drop_table("stats_population")
    op.drop_table("stats_dirty")
    op.drop_table("stats_venue_districts")
    op.drop_table("stats_district_cells")
    op.drop_table("stats_cells")
