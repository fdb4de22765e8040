"""flow labels and source hash; indexes for newest-first listings of flow runs

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from backend.database.types import Jsonb

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch_alter_table: SQLite cannot drop a column in place on downgrade.
    with op.batch_alter_table("flow") as batch:
        batch.add_column(sa.Column("labels", Jsonb, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("source_hash", sa.Text(), nullable=True))
    op.create_index(op.f("ix_flow_run__created"), "flow_run", ["created"])
    op.create_index(op.f("ix_flow_run__flow_id_created"), "flow_run", ["flow_id", "created"])


def downgrade() -> None:
    op.drop_index(op.f("ix_flow_run__flow_id_created"), table_name="flow_run")
    op.drop_index(op.f("ix_flow_run__created"), table_name="flow_run")
    with op.batch_alter_table("flow") as batch:
        batch.drop_column("source_hash")
        batch.drop_column("labels")
