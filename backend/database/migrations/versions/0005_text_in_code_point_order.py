"""text columns collated "C" on PostgreSQL: code-point order whatever the database's locale,
with indexes that serve it

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Every text column of every table at revision 0004 (SQLite's are code-point ordered already).
TEXT_COLUMNS = {
    "flow": ["name", "description", "entrypoint", "source_hash"],
    "task": ["slug", "name"],
    "flow_run": ["name", "state", "state_type", "state_message", "idempotency_key"],
    "task_run": ["name", "state", "state_type", "state_message", "cache_key"],
    "flow_run_state": ["state", "type", "message", "reason"],
    "task_run_state": ["state", "type", "message", "reason"],
    "log": ["name", "message"],
    "api_key": ["name", "scope", "token_hash"],
}


def _collate(collation: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in TEXT_COLUMNS.items():
        changes = ", ".join(
            f'ALTER COLUMN {column} TYPE text COLLATE "{collation}"' for column in columns
        )
        op.execute(sa.text(f"ALTER TABLE {table} {changes}"))


def upgrade() -> None:
    _collate("C")


def downgrade() -> None:
    _collate("default")
