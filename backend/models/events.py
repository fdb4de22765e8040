"""Run events: accepted state changes and log records, read back as announced.

Every state history row and log record is announced when its transaction commits
(migration 0006): by NOTIFY on PostgreSQL, through the outbox table ``run_event`` on SQLite.
``backend.events`` listens; these functions read what an announcement names, in its order.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.database import tables
from backend.database.tables import OUTBOX
from backend.models._filters import Where, where_clause
from backend.models._portable import in_values
from backend.models.catalog import TABLES
from backend.orchestration.states import StateType

# The outbox's columns (SQLite only; see the module docstring of migration 0006).
_outbox = sa.table(
    OUTBOX,
    sa.column("seq", sa.Integer),
    sa.column("kind", sa.Text),
    sa.column("flow_run_id", sa.Uuid),
    sa.column("task_run_id", sa.Uuid),
    sa.column("row_id", sa.Uuid),
)
# Announcements the outbox keeps: a listener further behind has fallen behind for good.
OUTBOX_KEPT = 100_000
FINAL = frozenset({StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED})


@dataclass(frozen=True)
class RunEvent:
    """One accepted state of a flow run (``task_run_id`` None) or of one of its task runs."""

    flow_run_id: uuid.UUID
    task_run_id: uuid.UUID | None
    task_slug: str | None
    map_index: int | None
    state: str
    state_type: str
    message: str | None
    timestamp: dt.datetime
    version: int

    @property
    def ends_flow_run(self) -> bool:
        return self.task_run_id is None and self.state_type in FINAL


@dataclass(frozen=True)
class Announced:
    """History rows one announcement names: their table, the flow run, the row ids."""

    kind: str  # "flow_run_state", "task_run_state" or "log"
    flow_run_id: uuid.UUID
    ids: tuple[uuid.UUID, ...]


async def read_current_event(conn: AsyncConnection, flow_run_id: uuid.UUID) -> RunEvent | None:
    """The flow run's state now, as an event (None: no such flow run)."""
    run = tables.flow_run
    row = (
        await conn.execute(
            sa.select(
                run.c.state,
                run.c.state_type,
                run.c.state_message,
                run.c.state_timestamp,
                run.c.version,
            ).where(run.c.id == flow_run_id)
        )
    ).one_or_none()
    if row is None:
        return None
    return RunEvent(flow_run_id, None, None, None, *row)


# What an announced row is read as: a state as a RunEvent, a log record as its row.
Event = RunEvent | Row[Any]


async def read_events(
    conn: AsyncConnection, announced: Sequence[Announced]
) -> dict[uuid.UUID, Event]:
    """The events the announcements name, by row id; a statement per table at most,
    whatever their number. Rows gone since (their flow run was deleted) are not there."""
    found: dict[uuid.UUID, Event] = {}
    for kind, select in _KINDS.items():
        ids = [i for a in announced if a.kind == kind for i in a.ids]
        if ids:
            for row in (await conn.execute(select(ids))).all():
                found[row.id] = row if kind == "log" else RunEvent(*row[1:])
    return found


def _flow_run_states(ids: list[uuid.UUID]) -> sa.Select[Any]:
    s = tables.flow_run_state
    return sa.select(
        s.c.id,
        s.c.flow_run_id,
        sa.null(),
        sa.null(),
        sa.null(),
        s.c.state,
        s.c.type,
        s.c.message,
        s.c.timestamp,
        s.c.version,
    ).where(in_values(s.c.id, ids))


def _task_run_states(ids: list[uuid.UUID]) -> sa.Select[Any]:
    s, run, task = tables.task_run_state, tables.task_run, tables.task
    return (
        sa.select(
            s.c.id,
            run.c.flow_run_id,
            run.c.id,
            task.c.slug,
            run.c.map_index,
            s.c.state,
            s.c.type,
            s.c.message,
            s.c.timestamp,
            s.c.version,
        )
        .join(run, run.c.id == s.c.task_run_id)
        .join(task, task.c.id == run.c.task_id)
        .where(in_values(s.c.id, ids))
    )


def _logs(ids: list[uuid.UUID]) -> sa.Select[Any]:
    return sa.select(tables.log).where(in_values(tables.log.c.id, ids))


_KINDS = {"flow_run_state": _flow_run_states, "task_run_state": _task_run_states, "log": _logs}


async def matching_flow_runs(
    conn: AsyncConnection, where: Where, ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of the flow runs ``ids`` match ``where`` (the read API's filter language).

    Raises:
        InputError: ``where`` is not a valid filter (checked even when ``ids`` is empty).
    """
    run = tables.flow_run
    info = TABLES["flow_run"]
    statement = sa.select(run.c.id).where(where_clause(info, run, where), in_values(run.c.id, ids))
    return set((await conn.execute(statement)).scalars())


async def read_outbox(
    conn: AsyncConnection, after: int, limit: int
) -> tuple[list[tuple[int, Announced]], int]:
    """SQLite: the announcements past ``seq`` ``after`` (at most ``limit``), each with its
    seq, and the last seq read (``after`` if none)."""
    run = tables.task_run
    flow_run_id = sa.func.coalesce(_outbox.c.flow_run_id, run.c.flow_run_id, type_=sa.Uuid)
    rows = (
        await conn.execute(
            sa.select(_outbox.c.seq, _outbox.c.kind, flow_run_id, _outbox.c.row_id)
            .select_from(_outbox.outerjoin(run, run.c.id == _outbox.c.task_run_id))
            .where(_outbox.c.seq > after)
            .order_by(_outbox.c.seq)
            .limit(limit)
        )
    ).all()
    announced = [
        (seq, Announced(kind, run_id, (row_id,)))
        for seq, kind, run_id, row_id in rows
        if run_id is not None  # the task run is gone: so is its flow run
    ]
    return announced, rows[-1].seq if rows else after


async def read_outbox_end(conn: AsyncConnection) -> int:
    """SQLite: the last seq of the outbox (0 when empty): a listener starts past it."""
    end = (await conn.execute(sa.select(sa.func.max(_outbox.c.seq)))).scalar()
    return int(end or 0)


async def prune_outbox(conn: AsyncConnection, keep: int = OUTBOX_KEPT) -> int:
    """SQLite: forget all but the last ``keep`` announcements, never the last one (seq must
    only grow); the number forgotten."""
    newest = sa.select(sa.func.max(_outbox.c.seq)).scalar_subquery()
    result = await conn.execute(sa.delete(_outbox).where(_outbox.c.seq <= newest - keep))
    return int(result.rowcount or 0)
