"""Run events: every state history row and log record announced as it commits, for
subscriptions

PostgreSQL: a statement trigger on each history table and on ``log`` sends the new rows' ids
with NOTIFY on the channel ``runview_events``, as ``<table> <transaction id> <flow run id>
<id> <id> ...`` (at most 100 ids a notification, far inside NOTIFY's 8,000 bytes). NOTIFY
is transactional: listeners on any replica get the notifications of a transaction when it
commits, in commit order, and never those of one rolled back.

SQLite has no NOTIFY, and one writer at a time: a row trigger appends each new row to the
outbox ``run_event``, whose ``seq`` therefore follows commit order, and listeners (in any
process on the file) read what is past the last ``seq`` they saw.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (table announced, how a new row finds its flow run, the order of its rows)
_SOURCES = {
    "flow_run_state": ("n.flow_run_id", "", "n.version"),
    "task_run_state": ("r.flow_run_id", "JOIN task_run r ON r.id = n.task_run_id", "n.version"),
    "log": ("n.flow_run_id", "", "n.timestamp, n.id"),
}


def _pg_upgrade() -> None:
    for table, (flow_run_id, join, order) in _SOURCES.items():
        op.execute(
            sa.text(f"""
CREATE FUNCTION runview_announce_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        'runview_events',
        '{table} ' || txid_current() || ' ' || chunk.flow_run_id || ' ' || chunk.ids
    )
    FROM (
        SELECT flow_run_id, string_agg(id::text, ' ' ORDER BY position) AS ids
        FROM (
            SELECT {flow_run_id} AS flow_run_id, n.id,
                   row_number() OVER (PARTITION BY {flow_run_id} ORDER BY {order}) AS position
            FROM new_rows n {join}
        ) numbered
        GROUP BY flow_run_id, (position - 1) / 100
        ORDER BY flow_run_id, min(position)
    ) chunk;
    RETURN NULL;
END $$""")
        )
        op.execute(
            sa.text(f"""
CREATE TRIGGER runview_announce_{table} AFTER INSERT ON {table}
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
EXECUTE FUNCTION runview_announce_{table}()""")
        )


def _sqlite_upgrade() -> None:
    # As cheap as a row trigger gets: one plain insert, no lookup (readers join the task run
    # to find its flow run). No AUTOINCREMENT either, which would write sqlite_sequence on
    # every insert: an INTEGER PRIMARY KEY is the largest + 1, and pruning never removes the
    # largest, so seq only grows.
    op.execute(
        sa.text("""
CREATE TABLE run_event (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    flow_run_id CHAR(32),
    task_run_id CHAR(32),
    row_id CHAR(32) NOT NULL
)""")
    )
    op.execute(
        sa.text("""
CREATE TRIGGER run_event_flow_run_state AFTER INSERT ON flow_run_state BEGIN
    INSERT INTO run_event (kind, flow_run_id, row_id)
    VALUES ('flow_run_state', NEW.flow_run_id, NEW.id);
END""")
    )
    op.execute(
        sa.text("""
CREATE TRIGGER run_event_task_run_state AFTER INSERT ON task_run_state BEGIN
    INSERT INTO run_event (kind, task_run_id, row_id)
    VALUES ('task_run_state', NEW.task_run_id, NEW.id);
END""")
    )
    op.execute(
        sa.text("""
CREATE TRIGGER run_event_log AFTER INSERT ON log BEGIN
    INSERT INTO run_event (kind, flow_run_id, row_id) VALUES ('log', NEW.flow_run_id, NEW.id);
END""")
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _pg_upgrade()
    else:
        _sqlite_upgrade()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _SOURCES:
            op.execute(sa.text(f"DROP TRIGGER runview_announce_{table} ON {table}"))
            op.execute(sa.text(f"DROP FUNCTION runview_announce_{table}()"))
    else:
        for table in _SOURCES:
            op.execute(sa.text(f"DROP TRIGGER run_event_{table}"))
        op.execute(sa.text("DROP TABLE run_event"))
