"""Runs as the door reads them: locked, with what the rules need, and updated in memory as
their proposals are accepted (``RunSnapshot``); and the cache hits a batch may reuse."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.database import tables
from backend.errors import InputError
from backend.orchestration.rules import Run
from backend.orchestration.states import (
    NAMES,
    ResultRef,
    State,
    StateType,
    parse_cache_expiration,
)

if TYPE_CHECKING:
    from backend.models.states import Proposed


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


class RunSnapshot:
    """A run as read under the lock, updated in memory as its proposals are accepted."""

    def __init__(self, kind: str, row: Any) -> None:
        self.kind = kind
        self.id = row.id
        self.state = current_state(row)
        self.version = row.version
        self.start_time = row.start_time
        self.end_time = row.end_time
        self.changed = False
        self.updated: dt.datetime | None = None  # set when a proposal is accepted
        # Each kind reads only its own columns (see lock_and_read); the other's keep these.
        self.run_count: int = 0
        self.cache_key: str | None = None
        self.max_retries: int = 0
        self.retry_delay_seconds: float = 0.0
        self.flow_run_state_type: StateType | None = None
        self.scheduled_start_time: dt.datetime | None = None
        if kind == "task_run":
            self.run_count, self.cache_key = row.run_count, row.cache_key
            self.max_retries, self.retry_delay_seconds = row.max_retries, row.retry_delay_seconds
            if row.mapped and row.map_index == -1:
                # A mapped parent's state is its children's: they retry, it never does (it
                # would wait in AwaitingRetry for a rerun that nothing makes).
                self.max_retries = 0
            self.flow_run_state_type = StateType(row.flow_run_state_type)
        else:
            self.scheduled_start_time = row.scheduled_start_time

    def snapshot(self, cached: tuple[uuid.UUID, ResultRef] | None) -> Run:
        return Run(
            id=self.id,
            state=self.state,
            version=self.version,
            run_count=self.run_count,
            max_retries=self.max_retries,
            retry_delay_seconds=self.retry_delay_seconds,
            flow_run_state_type=self.flow_run_state_type,
            cached=cached if cached and cached[0] != self.id else None,
        )

    def accept(self, state: State, now: dt.datetime) -> None:
        self.state, self.version, self.changed = state, self.version + 1, True
        if state.type is StateType.RUNNING:
            self.start_time = self.start_time or now
            self.run_count += 1
        if state.terminal:
            self.end_time = now
        if state.scheduled_time is not None and self.scheduled_start_time is not None:
            self.scheduled_start_time = state.scheduled_time
        self.updated = now

    def values(self) -> dict[str, Any]:
        """The run row's new values, as executemany parameters (the same keys for every run)."""
        values = {
            "_id": self.id,
            "state": self.state.name,
            "state_type": self.state.type.value,
            "state_message": self.state.message,
            "state_timestamp": self.state.timestamp,
            "serialized_state": self.state.serialize(),
            "version": self.version,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "updated": self.updated,
        }
        if self.kind == "task_run":
            values["run_count"] = self.run_count
        else:
            values["scheduled_start_time"] = self.scheduled_start_time
        return values


# What the rules and the write need of a run: its state columns, not the whole row.
STATE_COLUMNS = (
    "id",
    "state",
    "state_type",
    "state_message",
    "state_timestamp",
    "serialized_state",
    "version",
    "start_time",
    "end_time",
)


async def lock_and_read(
    conn: AsyncConnection, kind: str, ids: list[uuid.UUID]
) -> dict[uuid.UUID, RunSnapshot]:
    """The runs ``ids``, locked until the transaction ends.

    Task runs lock their flow runs too, so a task run cannot start while another
    transaction ends its flow run: whichever commits second sees what the first did. The
    lock order is the same everywhere: flow runs (by id) before their task runs (by id), so
    a batch and a flow run's end that takes its task runs with it queue, never deadlock.
    """
    table = tables.metadata.tables[kind]
    columns = [table.c[name] for name in STATE_COLUMNS]
    locked: list[sa.Table] = [table]
    order: list[Any] = [table.c.id]
    if kind == "flow_run":
        statement = sa.select(*columns, table.c.scheduled_start_time)
    else:
        task, flow_run = tables.task, tables.flow_run
        statement = (
            sa.select(
                *columns,
                table.c.run_count,
                table.c.cache_key,
                table.c.map_index,
                table.c.max_retries,
                table.c.retry_delay_seconds,
                task.c.mapped,
                flow_run.c.state_type.label("flow_run_state_type"),
            )
            # flow_run first: PostgreSQL locks each row's tables in the order of the FROM.
            .select_from(flow_run)
            .join(table, table.c.flow_run_id == flow_run.c.id)
            .join(task, task.c.id == table.c.task_id)
        )
        locked, order = [flow_run, table], [table.c.flow_run_id, table.c.id]
    if conn.dialect.name == "postgresql":
        # One array parameter: the statement text is the same for any number of ids, so
        # psycopg prepares it once (an expanded IN of 1,000 ids is a 20 KB text parsed anew).
        where = table.c.id == sa.any_(sa.bindparam("ids", ids, type_=postgresql.ARRAY(sa.Uuid)))
    else:
        where = table.c.id.in_(ids)
    statement = statement.where(where).order_by(*order).with_for_update(of=locked)
    rows = (await conn.execute(statement)).all()
    return {row.id: RunSnapshot(kind, row) for row in rows}


async def cache_candidates(
    conn: AsyncConnection,
    runs: Any,
    proposals: Sequence[Proposed],
    now: dt.datetime,
) -> dict[str, tuple[uuid.UUID, ResultRef]]:
    """For every cache key of a run proposed RUNNING: the newest Completed run with that key,
    if its cache has not expired. One query for the whole batch."""
    running = {
        p.run_id
        for p in proposals
        if isinstance(p.state, dict) and p.state.get("type") == "RUNNING"
    }
    keys = {run.cache_key for run in runs if run.cache_key and run.id in running}
    if not keys:
        return {}
    table = tables.task_run
    statement = (
        sa.select(table.c.id, table.c.cache_key, table.c.serialized_state)
        .where(table.c.cache_key.in_(keys), table.c.state_type == StateType.COMPLETED.value)
        .order_by(table.c.end_time.desc())
    )
    newest: dict[str, Any] = {}
    for row in (await conn.execute(statement)).all():
        newest.setdefault(row.cache_key, row)
    found: dict[str, tuple[uuid.UUID, ResultRef]] = {}
    for key, row in newest.items():
        serialized = row.serialized_state or {}
        expiration = (serialized.get("details") or {}).get("cache_expiration")
        if expiration is not None:
            try:
                expires = parse_cache_expiration(expiration)
            except InputError:  # stored before expirations were checked: not reusable
                continue
            if expires <= now:
                continue
        if serialized.get("result"):
            found[key] = (row.id, ResultRef.parse(serialized["result"]))
    return found


def _proposes_running(data: Any) -> bool:
    return isinstance(data, dict) and data.get("type") == "RUNNING"
