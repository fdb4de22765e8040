"""The one read the GraphiQL playground makes: the newest flow run, for its default query."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.database import tables


async def read_latest_flow_run_id(conn: AsyncConnection) -> uuid.UUID | None:
    """The id of the flow run created last, or None when no flow run exists.

    ``ix_flow_run__created`` answers it from the end of the index: one row read, no scan.
    """
    table = tables.flow_run
    latest: uuid.UUID | None = await conn.scalar(
        sa.select(table.c.id).order_by(table.c.created.desc()).limit(1)
    )
    return latest
