"""API keys: a hash of each token, its scope, and when it was revoked

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from backend.database.types import Timestamp

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("created", Timestamp(), nullable=False),
        sa.Column("revoked", Timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_key"),
        sa.UniqueConstraint("token_hash", name="uq_api_key__token_hash"),
    )
    op.create_index(
        "uq_api_key__name_live",
        "api_key",
        ["name"],
        unique=True,
        postgresql_where=sa.text("revoked IS NULL"),
        sqlite_where=sa.text("revoked IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_api_key__name_live", table_name="api_key")
    op.drop_table("api_key")
