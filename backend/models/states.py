"""The one door through which a run's state changes: ``set_flow_run_state`` and
``set_task_run_state``.

Each call: locks the run row (``FOR UPDATE`` on PostgreSQL; on SQLite the write transaction
of ``Database.begin`` already holds the database's write lock), reads what the rules need,
lets the policy decide, and, if the proposal is accepted, appends the state to the history
and updates the run row. Every call answers with the status, the reason, and the state now
in force, so a client that lost a race learns what happened instead.

``force_states`` is the server's own door for the changes no client proposes (cancelling the
task runs of a cancelled flow run, marking runs Late or Crashed); it writes history the same
way.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.database import tables
from backend.database.types import utcnow
from backend.errors import InputError
from backend.orchestration.rules import (
    FLOW_RUN_POLICY,
    TASK_RUN_POLICY,
    Policy,
    Proposal,
    Run,
    Status,
)
from backend.orchestration.states import NAMES, TERMINAL, ResultRef, State, StateType

_UNFINISHED = [t.value for t in StateType if t not in TERMINAL]


@dataclass(frozen=True)
class StateChange:
    """The answer to one proposal."""

    id: uuid.UUID
    status: Status
    message: str | None
    state: dict[str, Any] | None  # serialized; None only when the run does not exist


def current_state(row: Any) -> State:
    """The state a run row carries, rebuilt from its columns."""
    serialized = row.serialized_state or {}
    result = serialized.get("result")
    return State(
        type=StateType(row.state_type),
        name=row.state if NAMES.get(row.state) is StateType(row.state_type) else row.state_type,
        timestamp=row.state_timestamp,
        message=row.state_message,
        result=ResultRef.parse(result) if result else None,
        details=serialized.get("details") or {},
    )


async def set_flow_run_state(
    conn: AsyncConnection,
    flow_run_id: uuid.UUID,
    version: int,
    state: Any,
    *,
    now: dt.datetime | None = None,
) -> StateChange:
    """Propose ``state`` (serialized) for a flow run believed to be at ``version``."""
    now = now or utcnow()
    table = tables.flow_run
    row = (
        await conn.execute(sa.select(table).where(table.c.id == flow_run_id).with_for_update())
    ).one_or_none()
    if row is None:
        return _missing("flow run", flow_run_id)
    run = Run(id=row.id, state=current_state(row), version=row.version)
    return await _decide(conn, table, row, run, version, state, FLOW_RUN_POLICY, now)


async def set_task_run_state(
    conn: AsyncConnection,
    task_run_id: uuid.UUID,
    version: int,
    state: Any,
    *,
    now: dt.datetime | None = None,
) -> StateChange:
    """Propose ``state`` (serialized) for a task run believed to be at ``version``."""
    now = now or utcnow()
    task_run, task, flow_run = tables.task_run, tables.task, tables.flow_run
    statement = (
        sa.select(
            task_run,
            task.c.max_retries,
            task.c.retry_delay_seconds,
            flow_run.c.state_type.label("flow_run_state_type"),
        )
        .join(task, task.c.id == task_run.c.task_id)
        .join(flow_run, flow_run.c.id == task_run.c.flow_run_id)
        .where(task_run.c.id == task_run_id)
        .with_for_update(of=task_run)
    )
    row = (await conn.execute(statement)).one_or_none()
    if row is None:
        return _missing("task run", task_run_id)
    run = Run(
        id=row.id,
        state=current_state(row),
        version=row.version,
        run_count=row.run_count,
        max_retries=row.max_retries,
        retry_delay_seconds=row.retry_delay_seconds,
        flow_run_state_type=StateType(row.flow_run_state_type),
        cached=await _cached_result(conn, row, now) if _proposes(state, "RUNNING") else None,
    )
    return await _decide(conn, task_run, row, run, version, state, TASK_RUN_POLICY, now)


def _proposes(state: Any, state_type: str) -> bool:
    return isinstance(state, dict) and state.get("type") == state_type


def _missing(kind: str, id: uuid.UUID) -> StateChange:
    return StateChange(id, Status.ABORTED, f"{kind} {str(id)!r} does not exist.", None)


async def _decide(
    conn: AsyncConnection,
    table: sa.Table,
    row: Row[Any],
    run: Run,
    version: int,
    data: Any,
    policy: Policy,
    now: dt.datetime,
) -> StateChange:
    try:
        proposed = State.parse(data, now)
    except InputError as error:
        return StateChange(run.id, Status.REJECTED, str(error), run.state.serialize())
    proposal = policy.decide(Proposal(run=run, proposed=proposed, version=version, now=now))
    if proposal.status is Status.ACCEPTED:
        await _write(conn, table, row, proposal.state, now)
        for effect in proposal.effects:
            await finish_task_runs(conn, [run.id], effect.name, effect.message, now=now)
    return StateChange(run.id, proposal.status, proposal.reason, proposal.in_force.serialize())


async def _write(
    conn: AsyncConnection, table: sa.Table, row: Row[Any], state: State, now: dt.datetime
) -> None:
    values: dict[str, Any] = {
        "state": state.name,
        "state_type": state.type.value,
        "state_message": state.message,
        "state_timestamp": state.timestamp,
        "serialized_state": state.serialize(),
        "version": row.version + 1,
        "updated": now,
    }
    if state.type is StateType.RUNNING:
        if row.start_time is None:
            values["start_time"] = now
        if "run_count" in table.c:
            values["run_count"] = row.run_count + 1
    if state.terminal:
        values["end_time"] = now
    if state.scheduled_time is not None and "scheduled_start_time" in table.c:
        values["scheduled_start_time"] = state.scheduled_time
    await conn.execute(sa.update(table).where(table.c.id == row.id).values(values))
    history = tables.metadata.tables[f"{table.name}_state"]
    await conn.execute(
        sa.insert(history).values(history_row(table.name, row.id, state, row.version + 1))
    )


def history_row(run_table: str, run_id: uuid.UUID, state: State, version: int) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        f"{run_table}_id": run_id,
        "timestamp": state.timestamp,
        "state": state.name,
        "type": state.type.value,
        "message": state.message,
        "result": state.result.serialize() if state.result else None,
        "details": dict(state.details),
        "serialized_state": state.serialize(),
        "version": version,
    }


async def _cached_result(
    conn: AsyncConnection, row: Row[Any], now: dt.datetime
) -> tuple[uuid.UUID, ResultRef] | None:
    """The newest Completed run with this run's cache key, if its cache has not expired."""
    if row.cache_key is None:
        return None
    table = tables.task_run
    statement = (
        sa.select(table.c.id, table.c.serialized_state)
        .where(
            table.c.cache_key == row.cache_key,
            table.c.state_type == StateType.COMPLETED.value,
            table.c.id != row.id,
        )
        .order_by(table.c.end_time.desc())
        .limit(1)
    )
    source = (await conn.execute(statement)).one_or_none()
    if source is None or not source.serialized_state:
        return None
    serialized = source.serialized_state
    expiration = (serialized.get("details") or {}).get("cache_expiration")
    if expiration is not None and dt.datetime.fromisoformat(expiration) <= now:
        return None
    result = serialized.get("result")
    return (source.id, ResultRef.parse(result)) if result else None


async def lock_unfinished(
    conn: AsyncConnection,
    table: sa.Table,
    where: Any,
    *,
    order_by: Any = None,
    limit: int | None = None,
    skip_locked: bool = False,
) -> list[uuid.UUID]:
    """Lock the unfinished runs of ``table`` matching ``where``; their ids.

    ``skip_locked`` passes over rows another transaction holds (PostgreSQL), which is how
    several agents claim runs at once without waiting on each other or claiming twice.
    """
    statement = (
        sa.select(table.c.id)
        .where(where, table.c.state_type.in_(_UNFINISHED))
        .order_by(order_by if order_by is not None else table.c.id)
        .limit(limit)
        .with_for_update(skip_locked=skip_locked)
    )
    return list((await conn.execute(statement)).scalars().all())


async def force_states(
    conn: AsyncConnection,
    table: sa.Table,
    ids: Sequence[uuid.UUID],
    name: str,
    message: str,
    *,
    now: dt.datetime | None = None,
) -> list[Row[Any]]:
    """Put the runs ``ids`` (locked by ``lock_unfinished``) into the state ``name``.

    For the changes the server makes itself (cancel cascade, claims, Late, Crashed), which
    no client proposes. Two statements whatever the number of runs: update (returning the
    new versions), then append the history. Returns the updated run rows.
    """
    if not ids:
        return []
    now = now or utcnow()
    state = State(type=NAMES[name], name=name, timestamp=now, message=message)
    values: dict[str, Any] = {
        "state": state.name,
        "state_type": state.type.value,
        "state_message": message,
        "state_timestamp": now,
        "serialized_state": state.serialize(),
        "version": table.c.version + 1,
        "updated": now,
    }
    if state.terminal:
        values["end_time"] = now
    updated = (
        await conn.execute(
            sa.update(table).where(table.c.id.in_(ids)).values(values).returning(*table.c)
        )
    ).all()
    history = tables.metadata.tables[f"{table.name}_state"]
    await conn.execute(
        sa.insert(history),
        [history_row(table.name, row.id, state, row.version) for row in updated],
    )
    return list(updated)


async def finish_task_runs(
    conn: AsyncConnection,
    flow_run_ids: Sequence[uuid.UUID],
    name: str,
    message: str,
    *,
    now: dt.datetime | None = None,
) -> None:
    """End the unfinished task runs of these flow runs (Cancelled, Crashed)."""
    task_run = tables.task_run
    ids = await lock_unfinished(conn, task_run, task_run.c.flow_run_id.in_(flow_run_ids))
    await force_states(conn, task_run, ids, name, message, now=now)


async def set_states(
    conn: AsyncConnection,
    kind: str,
    proposals: Sequence[tuple[uuid.UUID, int, Any]],
    *,
    now: dt.datetime | None = None,
) -> list[StateChange]:
    """Judge many proposals, each on its own, in order, in the caller's transaction.

    The batch's rows are locked first, all at once and in id order: two batches naming the
    same runs in different orders then queue instead of deadlocking.
    """
    table = tables.metadata.tables[kind]
    ids = sorted({id for id, _, _ in proposals})
    if len(ids) > 1:
        await conn.execute(
            sa.select(table.c.id).where(table.c.id.in_(ids)).order_by(table.c.id).with_for_update()
        )
    setter = set_flow_run_state if kind == "flow_run" else set_task_run_state
    return [await setter(conn, id, version, state, now=now) for id, version, state in proposals]
