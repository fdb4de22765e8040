"""Operations on flow runs beyond their creation: cancel, delete, heartbeats, claims."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.database import tables
from backend.database.types import utcnow
from backend.errors import InputError
from backend.models.states import StateChange, lock_unfinished, propose_as_server
from backend.orchestration.rules import Status
from backend.orchestration.states import StateType

# Claims per request: an agent asks for the runs it can start now, not a backlog.
MAX_CLAIM = 1_000
# The message of a claim's Pending: it tells a claim (which expires, see
# backend.models.services) from a run its creator runs itself, which is Pending too.
CLAIM_MESSAGE = "Claimed by an agent."
_NOT_STARTED = {t.value for t in (StateType.SCHEDULED, StateType.PENDING, StateType.PAUSED)}


async def cancel_flow_run(
    conn: AsyncConnection, flow_run_id: uuid.UUID, *, now: dt.datetime | None = None
) -> StateChange:
    """Cancel a flow run: Cancelled if it has not started, Cancelling if it is running (its
    runtime then stops and ends it Cancelled). The rules refuse it for a run that is over
    or already being cancelled, and a Cancelled run takes its task runs with it."""
    table = tables.flow_run
    row = (
        await conn.execute(
            sa.select(table.c.state_type).where(table.c.id == flow_run_id).with_for_update()
        )
    ).one_or_none()
    if row is None:
        raise InputError(f"flow run {str(flow_run_id)!r} does not exist.")
    # A run that has not started ends now; one that is running (or already being
    # cancelled, which the rules refuse to repeat) is asked to stop.
    name = "Cancelled" if row.state_type in _NOT_STARTED else "Cancelling"
    [change] = await propose_as_server(
        conn, "flow_run", [flow_run_id], name, "Cancelled by request.", now=now
    )
    return change


async def delete_flow_run(conn: AsyncConnection, flow_run_id: uuid.UUID) -> None:
    """Delete a flow run with its task runs, states and logs (foreign keys cascade).

    Child flow runs started by its task runs stay, no longer linked to a parent.
    """
    flow_run, task_run = tables.flow_run, tables.task_run
    deleted = await conn.scalar(
        sa.delete(flow_run).where(flow_run.c.id == flow_run_id).returning(flow_run.c.id)
    )
    if deleted is None:
        raise InputError(f"flow run {str(flow_run_id)!r} does not exist.")
    orphans = flow_run.c.parent_task_run_id.not_in(sa.select(task_run.c.id))
    await conn.execute(
        sa.update(flow_run)
        .where(flow_run.c.parent_task_run_id.is_not(None), orphans)
        .values(parent_task_run_id=None)
    )


async def record_heartbeat(
    conn: AsyncConnection, table_name: str, run_id: uuid.UUID, *, now: dt.datetime | None = None
) -> Row[Any]:
    """Note that a run's process is alive; the run row (its state tells a runtime whether
    it has been cancelled meanwhile)."""
    table = tables.metadata.tables[table_name]
    row = (
        await conn.execute(
            sa.update(table)
            .where(table.c.id == run_id)
            .values(heartbeat=now or utcnow())
            .returning(table.c.id, table.c.heartbeat, table.c.state, table.c.state_type)
        )
    ).one_or_none()
    if row is None:
        raise InputError(f"{table_name.replace('_', ' ')} {str(run_id)!r} does not exist.")
    return row


async def claim_flow_runs(
    conn: AsyncConnection,
    *,
    limit: int,
    labels: Sequence[str] = (),
    now: dt.datetime | None = None,
) -> list[Row[Any]]:
    """Move up to ``limit`` due flow runs to Pending for one agent; the runs it claimed.

    Due: SCHEDULED (Scheduled, Late, AwaitingRetry) with a start time not in the future,
    of a flow with an entrypoint: without one no agent can load the flow. (A run its
    creator runs itself is created Pending, never Scheduled, so no agent sees it.)
    An agent takes a run only if it has every label of the run. The oldest due runs go
    first. ``FOR UPDATE SKIP LOCKED`` lets agents claim concurrently: each skips the rows
    another is claiming, so no run is claimed twice and nobody waits.
    """
    if not 1 <= limit <= MAX_CLAIM:
        raise InputError(f"limit {limit!r} is out of range; expected 1 to {MAX_CLAIM}.")
    now = now or utcnow()
    table = tables.flow_run
    due = sa.and_(
        table.c.state_type == StateType.SCHEDULED.value,
        table.c.scheduled_start_time <= now,
        _labels_within(conn, table.c.labels, list(labels)),
        sa.exists().where(
            tables.flow.c.id == table.c.flow_id, tables.flow.c.entrypoint.is_not(None)
        ),
    )
    ids = await lock_unfinished(
        conn, table, due, order_by=table.c.scheduled_start_time, limit=limit
    )
    changes = await propose_as_server(conn, "flow_run", ids, "Pending", CLAIM_MESSAGE, now=now)
    claimed = [change.id for change in changes if change.status is Status.ACCEPTED]
    if not claimed:
        return []
    rows = await conn.execute(
        sa.select(table).where(table.c.id.in_(claimed)).order_by(table.c.scheduled_start_time)
    )
    return list(rows.all())


def _labels_within(conn: AsyncConnection, column: Any, labels: list[str]) -> Any:
    """SQL for "every label of the run is one of ``labels``"."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        # The column's type is a JSON variant; JSONB's comparator has the <@ operator.
        return sa.type_coerce(column, JSONB).contained_by(sa.bindparam(None, labels, JSONB))
    each = sa.func.json_each(column).table_valued("value")
    return ~sa.exists(sa.select(1).select_from(each).where(each.c.value.not_in(labels)))
