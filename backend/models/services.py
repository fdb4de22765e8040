"""The SQL of the background services: mark Late runs, mark Crashed runs, release claims
whose agent is gone, and the lock that lets one server replica at a time do it."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.database import tables
from backend.database.types import utcnow
from backend.models.flow_runs import CLAIM_MESSAGE
from backend.models.states import StateChange, lock_unfinished, propose_as_server
from backend.orchestration.rules import Status
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
    ids = await lock_unfinished(conn, table, overdue)
    message = f"Not started {late_after.total_seconds():g} s after its scheduled time."
    return _accepted(await propose_as_server(conn, "flow_run", ids, "Late", message, now=now))


async def mark_crashed_runs(
    conn: AsyncConnection, *, timeout: dt.timedelta, now: dt.datetime | None = None
) -> list[uuid.UUID]:
    """RUNNING flow runs with no sign of life for ``timeout`` become Crashed, and so do
    their unfinished task runs.

    The last sign of life is the later of the heartbeat and the moment the run started
    running: a heartbeat older than that one was for an earlier claim of the run (an agent
    beats for the runs it claimed, and a claim may be released and the run claimed again).
    """
    now = now or utcnow()
    table = tables.flow_run
    silent = sa.and_(table.c.state_type == StateType.RUNNING.value, _silent_since(now - timeout))
    ids = await lock_unfinished(conn, table, silent)
    message = f"No heartbeat for {timeout.total_seconds():g} s: the process is gone."
    # The rules end their unfinished task runs with them.
    return _accepted(await propose_as_server(conn, "flow_run", ids, "Crashed", message, now=now))


async def release_expired_claims(
    conn: AsyncConnection, *, timeout: dt.timedelta, now: dt.datetime | None = None
) -> list[uuid.UUID]:
    """Flow runs an agent claimed but that show no sign of life for ``timeout`` (the claim
    is Pending and nothing beat for it) go back to Scheduled, for any agent to claim again.

    A live agent beats for each run it claimed from the moment it starts the run's process,
    so only the claims of an agent that is gone expire (killed, or cut off from the server
    for longer than the timeout: its process then finds the run moved on and does not run
    it, and it leaves alone a run it no longer holds). Runs made Pending by the process
    that created them (``create_flow_run(pending=True)``) are not claims and stay: that
    process proposes Running right after creating one, maybe after riding out an outage, and
    such a run belongs to no agent, so Scheduled would hand it to one.
    """
    now = now or utcnow()
    table = tables.flow_run
    expired = sa.and_(
        table.c.state_type == StateType.PENDING.value,
        table.c.state == "Pending",
        table.c.state_message == CLAIM_MESSAGE,
        _silent_since(now - timeout),
    )
    ids = await lock_unfinished(conn, table, expired)
    message = (
        "The claim expired: the agent that claimed it showed no sign of life for"
        f" {timeout.total_seconds():g} s; another agent may claim it."
    )
    changes = await propose_as_server(conn, "flow_run", ids, "Scheduled", message, now=now)
    return _accepted(changes)


def _silent_since(cutoff: dt.datetime) -> sa.ColumnElement[bool]:
    """Neither the current state nor the last heartbeat is newer than ``cutoff``."""
    table = tables.flow_run
    return sa.and_(
        table.c.state_timestamp < cutoff,
        sa.or_(table.c.heartbeat.is_(None), table.c.heartbeat < cutoff),
    )


def _accepted(changes: list[StateChange]) -> list[uuid.UUID]:
    return [change.id for change in changes if change.status is Status.ACCEPTED]
