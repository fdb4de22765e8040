"""The one door through which a run's state changes: ``set_states`` (and the one-proposal
``set_flow_run_state`` / ``set_task_run_state``).

A batch locks its runs (``FOR UPDATE`` on PostgreSQL, in id order; on SQLite the write
transaction of ``Database.begin`` already holds the database's write lock), reads what the
rules need, lets the policy decide each proposal in order, then writes the accepted states
to the run rows and appends them to the history, in a fixed number of statements. Every
proposal is answered with the status, the reason and the state now in force, so a client
that lost a race learns what happened instead.

``force_states`` is the server's own door for the changes no client proposes (cancelling the
task runs of a cancelled flow run, claims, marking runs Late or Crashed); it writes history
the same way.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.database import tables
from backend.database.types import utcnow
from backend.errors import InputError
from backend.orchestration.rules import (
    FLOW_RUN_POLICY,
    TASK_RUN_POLICY,
    Proposal,
    Run,
    Status,
)
from backend.orchestration.states import (
    NAMES,
    TERMINAL,
    ResultRef,
    State,
    StateType,
    parse_cache_expiration,
)

_UNFINISHED = [t.value for t in StateType if t not in TERMINAL]


class Proposed(NamedTuple):
    """One proposal of a batch: the state a client wants for a run it read at ``version``.

    ``proposal_id`` is made by the client. A proposal sent again because its answer was lost
    (a timeout, a restart) is then answered as the first time, instead of being judged
    anew against the state it put the run in: no false REJECTED, no second history row.
    """

    run_id: uuid.UUID
    version: int
    state: Any
    proposal_id: uuid.UUID | None = None


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
    return (await set_states(conn, "flow_run", [Proposed(flow_run_id, version, state)], now=now))[0]


async def set_task_run_state(
    conn: AsyncConnection,
    task_run_id: uuid.UUID,
    version: int,
    state: Any,
    *,
    now: dt.datetime | None = None,
) -> StateChange:
    """Propose ``state`` (serialized) for a task run believed to be at ``version``."""
    return (await set_states(conn, "task_run", [Proposed(task_run_id, version, state)], now=now))[0]


async def set_states(
    conn: AsyncConnection,
    kind: str,
    batch: Sequence[Proposed | tuple[uuid.UUID, int, Any]],
    *,
    now: dt.datetime | None = None,
) -> list[StateChange]:
    """Judge many proposals, each on its own and in order, in the caller's transaction.

    A fixed number of statements whatever the batch size: one read that locks every run
    named (in id order, so two batches naming the same runs queue rather than deadlock), one
    read of the cache candidates (only when a run proposed Running has a cache key), one of
    earlier answers (only for re-sent proposals), then the write of the runs and their
    history (``_write``: one statement on PostgreSQL).
    Proposals are decided in order against in-memory snapshots, so a second proposal for the
    same run sees the outcome of the first. A proposal that is malformed or cannot be stored
    is refused on its own; the rest of the batch is judged as if it were not there.
    """
    now = now or utcnow()
    proposals = [Proposed(*proposal) for proposal in batch]
    policy = FLOW_RUN_POLICY if kind == "flow_run" else TASK_RUN_POLICY
    runs = await _lock_and_read(conn, kind, sorted({p.run_id for p in proposals}))
    cached = await _cache_candidates(conn, runs.values(), proposals, now)
    answered = await _earlier_answers(conn, kind, runs, proposals)
    changes: list[StateChange] = []
    history: list[dict[str, Any]] = []
    ended: dict[str, list[uuid.UUID]] = {}  # effect state name -> flow run ids
    for run_id, version, data, proposal_id in proposals:
        run = runs.get(run_id)
        if run is None:
            message = f"{kind.replace('_', ' ')} {str(run_id)!r} does not exist."
            changes.append(StateChange(run_id, Status.ABORTED, message, None))
            continue
        history_id = _history_id(proposal_id, run_id, version)
        if history_id in answered:
            changes.append(answered[history_id])
            continue
        try:
            proposed = State.parse(data, now)
        except InputError as error:
            changes.append(StateChange(run_id, Status.REJECTED, str(error), run.state.serialize()))
            continue
        hit = cached.get(run.cache_key) if run.cache_key else None
        snapshot = run.snapshot(hit if proposed.type is StateType.RUNNING else None)
        proposal = policy.decide(
            Proposal(run=snapshot, proposed=proposed, version=version, now=now)
        )
        change = StateChange(
            run_id, proposal.status, proposal.reason, proposal.in_force.serialize()
        )
        if proposal.status is Status.ACCEPTED:
            run.accept(proposal.state, now)
            history.append(
                history_row(
                    kind, run_id, proposal.state, run.version, id=history_id, reason=proposal.reason
                )
            )
            for effect in proposal.effects:
                ended.setdefault(effect.name, []).append(run_id)
            if proposal_id is not None:  # sent twice in one batch: answered once
                answered[history_id] = change
        changes.append(change)
    changed = [run.values() for run in runs.values() if run.changed]
    if changed:
        await _write(conn, kind, changed, history)
    for name, flow_run_ids in ended.items():
        await finish_task_runs(conn, flow_run_ids, name, f"Its flow run is {name}.", now=now)
    return changes


def _history_id(proposal_id: uuid.UUID | None, run_id: uuid.UUID, version: int) -> uuid.UUID:
    """The id of the history row an accepted proposal writes.

    With a client-made proposal id it is derived from that id, the run and the version
    proposed from, so a re-sent proposal finds the row the first one wrote, and a client
    that reuses an id for another run or version cannot collide with it.
    """
    if proposal_id is None:
        return uuid.uuid4()
    return uuid.uuid5(proposal_id, f"{run_id}/{version}")


async def _earlier_answers(
    conn: AsyncConnection,
    kind: str,
    runs: dict[uuid.UUID, _RunSnapshot],
    proposals: Sequence[Proposed],
) -> dict[uuid.UUID, StateChange]:
    """The answers already given to proposals of this batch that were accepted before, by
    the history row id each wrote.

    Only a proposal whose version is stale can have been accepted (acceptance moves the run
    past it), so a batch of fresh proposals costs no query here.
    """
    ids: dict[uuid.UUID, uuid.UUID] = {}  # history id -> run id
    for run_id, version, _, proposal_id in proposals:
        run = runs.get(run_id)
        if proposal_id is not None and run is not None and version != run.version:
            ids[_history_id(proposal_id, run_id, version)] = run_id
    if not ids:
        return {}
    history = tables.metadata.tables[f"{kind}_state"]
    run_column = history.c[f"{kind}_id"]
    rows = await conn.execute(
        sa.select(history.c.id, run_column, history.c.reason, history.c.serialized_state).where(
            history.c.id.in_(ids)
        )
    )
    return {
        row.id: StateChange(row[1], Status.ACCEPTED, row.reason, row.serialized_state)
        for row in rows
        if ids[row.id] == row[1]
    }


class _RunSnapshot:
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
        # Each kind reads only its own columns (see _lock_and_read); the other's keep these.
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
_STATE_COLUMNS = (
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


async def _lock_and_read(
    conn: AsyncConnection, kind: str, ids: list[uuid.UUID]
) -> dict[uuid.UUID, _RunSnapshot]:
    table = tables.metadata.tables[kind]
    columns = [table.c[name] for name in _STATE_COLUMNS]
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
            .join(task, task.c.id == table.c.task_id)
            .join(flow_run, flow_run.c.id == table.c.flow_run_id)
        )
    if conn.dialect.name == "postgresql":
        # One array parameter: the statement text is the same for any number of ids, so
        # psycopg prepares it once (an expanded IN of 1,000 ids is a 20 KB text parsed anew).
        where = table.c.id == sa.any_(sa.bindparam("ids", ids, type_=postgresql.ARRAY(sa.Uuid)))
    else:
        where = table.c.id.in_(ids)
    statement = statement.where(where).order_by(table.c.id).with_for_update(of=table)
    rows = (await conn.execute(statement)).all()
    return {row.id: _RunSnapshot(kind, row) for row in rows}


def _written_columns(kind: str) -> tuple[str, ...]:
    """The run columns ``_RunSnapshot.values`` sets (besides ``_id``, the row to update)."""
    own = "run_count" if kind == "task_run" else "scheduled_start_time"
    return (*_STATE_COLUMNS[1:], "updated", own)


async def _write(
    conn: AsyncConnection,
    kind: str,
    runs: list[dict[str, Any]],
    history: list[dict[str, Any]],
) -> None:
    """Write the accepted states: the run rows' new values and the history rows.

    PostgreSQL gets ONE statement (the UPDATE as a data-modifying CTE of the INSERT), with
    each list sent as one JSON parameter, so the round trips do not grow with the batch.
    SQLite is in-process, where an executemany per table costs no round trip.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(_pg_write(kind), {"runs": _json(runs), "history": _json(history)})
        return
    table = tables.metadata.tables[kind]
    await conn.execute(sa.update(table).where(table.c.id == sa.bindparam("_id")), runs)
    await conn.execute(sa.insert(tables.metadata.tables[f"{kind}_state"]), history)


@functools.cache
def _pg_write(kind: str) -> sa.Insert:
    table = tables.metadata.tables[kind]
    history = tables.metadata.tables[f"{kind}_state"]
    written = [table.c[name] for name in _written_columns(kind)]
    runs = _recordset("runs", [sa.column("_id", sa.Uuid), *written])
    update = (
        sa.update(table)
        .where(table.c.id == runs.c._id)
        .values({column.name: runs.c[column.name] for column in written})
    )
    rows = _recordset("history", list(history.c))
    insert = sa.insert(history).from_select(list(history.c), sa.select(*rows.c))
    return insert.add_cte(update.cte("updated"))


def _recordset(name: str, columns: Sequence[Any]) -> Any:
    """``jsonb_to_recordset(:name) AS name(column type, ...)``: a JSON array parameter read
    as rows with ``columns``' names and types."""
    document = sa.cast(sa.bindparam(name, type_=sa.Text), postgresql.JSONB)
    return (
        sa.func.jsonb_to_recordset(document)
        .table_valued(*(sa.column(column.name, column.type) for column in columns))
        .render_derived(name=name, with_types=True)
    )


def _json(rows: list[dict[str, Any]]) -> str:
    """``rows`` as JSON text for ``_recordset``: uuids and timestamps as PostgreSQL reads
    them (naive timestamps are UTC, as ``Timestamp`` takes them)."""
    try:
        return orjson.dumps(rows, option=orjson.OPT_NAIVE_UTC).decode()
    except TypeError:  # orjson refuses integers beyond 64 bits; the json module does not
        return json.dumps(rows, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    raise TypeError(f"{value!r} is not JSON serializable")


async def _cache_candidates(
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


def history_row(
    run_table: str,
    run_id: uuid.UUID,
    state: State,
    version: int,
    *,
    id: uuid.UUID | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "id": id or uuid.uuid4(),
        f"{run_table}_id": run_id,
        "timestamp": state.timestamp,
        "state": state.name,
        "type": state.type.value,
        "message": state.message,
        "result": state.result.serialize() if state.result else None,
        "details": dict(state.details),
        "serialized_state": state.serialize(),
        "version": version,
        "reason": reason,
    }


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
