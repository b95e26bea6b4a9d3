"""checkins: an index for the exit scan's stay (pupil, activity, entry time)

An exit scan looks for the pupil's latest open stay at the activity. With only the (student_id,
status) and activity_id indexes, SQLite chose activity_id: it read every stay ever made at that
activity and sorted them, on every exit scan (0.7 ms at 3,400 stays, growing with the activity).
This index answers it with one search, in entry-time order. Building it locks writes to checkins
for as long as it takes (seconds for millions of stays): run the upgrade in the upgrade window.

Revision ID: 0009_checkin_exit_index
Revises: 0008_stats_entry_queue
"""

from alembic import op

revision = "0009_checkin_exit_index"
down_revision = "0008_stats_entry_queue"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_checkins_student_activity", "checkins", ["student_id", "activity_id", "entered_at"])


def downgrade():
    op.drop_index("ix_checkins_student_activity", table_name="checkins")
