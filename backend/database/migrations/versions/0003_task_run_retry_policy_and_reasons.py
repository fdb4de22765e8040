"""each task run keeps the retry policy it was created with; history rows keep the reason
the server gave for a state it changed or refused to change

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_run") as batch:
        batch.add_column(sa.Column("max_retries", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("retry_delay_seconds", sa.Float(), nullable=False, server_default="0")
        )
    # Runs made before this revision take their task's policy, as they were judged by it.
    task = sa.table(
        "task",
        sa.column("id"),
        sa.column("max_retries"),
        sa.column("retry_delay_seconds"),
    )
    task_run = sa.table(
        "task_run", sa.column("task_id"), sa.column("max_retries"), sa.column("retry_delay_seconds")
    )

    def of_task(column: str) -> sa.ScalarSelect[object]:
        return sa.select(task.c[column]).where(task.c.id == task_run.c.task_id).scalar_subquery()

    op.execute(
        task_run.update().values(
            max_retries=of_task("max_retries"),
            retry_delay_seconds=of_task("retry_delay_seconds"),
        )
    )
    for history in ("flow_run_state", "task_run_state"):
        with op.batch_alter_table(history) as batch:
            batch.add_column(sa.Column("reason", sa.Text(), nullable=True))


def downgrade() -> None:
    for history in ("flow_run_state", "task_run_state"):
        with op.batch_alter_table(history) as batch:
            batch.drop_column("reason")
    with op.batch_alter_table("task_run") as batch:
        batch.drop_column("retry_delay_seconds")
        batch.drop_column("max_retries")
