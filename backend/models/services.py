"""The SQL of the background services: mark Late runs, mark Crashed runs, and the lock that
lets one server replica at a time do it."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.database import tables
from backend.database.types import utcnow
from backend.models.states import finish_task_runs, force_states, lock_unfinished
from backend.orchestration.states import StateType

# pg_try_advisory_xact_lock key for the services (any constant unique to runview).
SERVICES_LOCK = 0x72756E76  # "runv"


async def try_services_lock(conn: AsyncConnection) -> bool:
    """Take the services' lock for this transaction, if no other replica holds it.

    On SQLite the write transaction already excludes every other writer.
    """
    if conn.dialect.name != "postgresql":
        return True
    locked = await conn.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(SERVICES_LOCK)))
    return bool(locked)


async def mark_late_runs(
    conn: AsyncConnection, *, late_after: dt.timedelta, now: dt.datetime | None = None
) -> list[uuid.UUID]:
    """Scheduled flow runs whose start time passed more than ``late_after`` ago become Late."""
    now = now or utcnow()
    table = tables.flow_run
    overdue = sa.and_(
        table.c.state_type == StateType.SCHEDULED.value,
        table.c.state == "Scheduled",
        table.c.scheduled_start_time < now - late_after,
    )
    ids = await lock_unfinished(conn, table, overdue, skip_locked=True)
    message = f"Not started {late_after.total_seconds():g} s after its scheduled time."
    rows = await force_states(conn, table, ids, "Late", message, now=now)
    return [row.id for row in rows]


async def mark_crashed_runs(
    conn: AsyncConnection, *, timeout: dt.timedelta, now: dt.datetime | None = None
) -> list[uuid.UUID]:
    """RUNNING flow runs with no sign of life for ``timeout`` become Crashed, and so do
    their unfinished task runs.

    The last sign of life is the heartbeat, or, before the first heartbeat, the moment the
    run started running.
    """
    now = now or utcnow()
    table = tables.flow_run
    last_seen = sa.func.coalesce(table.c.heartbeat, table.c.state_timestamp)
    silent = sa.and_(table.c.state_type == StateType.RUNNING.value, last_seen < now - timeout)
    ids = await lock_unfinished(conn, table, silent, skip_locked=True)
    message = f"No heartbeat for {timeout.total_seconds():g} s: the process is gone."
    rows = await force_states(conn, table, ids, "Crashed", message, now=now)
    crashed = [row.id for row in rows]
    if crashed:
        await finish_task_runs(conn, crashed, "Crashed", "Its flow run crashed.", now=now)
    return crashed
