"""Creating flows, flow runs and task runs as clients do: idempotently, with history.

A new run starts with its first state already in its history (version 1), so the history
always explains the row. Creation races are settled by the database (``INSERT ... ON
CONFLICT DO NOTHING`` on the unique keys, then read the winner), never by check-then-insert.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.database import tables
from backend.database.types import Jsonb, Timestamp, utcnow
from backend.errors import InputError
from backend.models.history import history_row
from backend.models.states import set_flow_run_state
from backend.orchestration.states import State, StateType

_TASK_FIELDS = ("name", "mapped", "max_retries", "retry_delay_seconds", "tags")
# Children of one mapped parent. Far above the 10,000 the runtime is built for, low enough
# that one request cannot ask the database for an unbounded insert.
MAX_MAPPED_CHILDREN = 100_000


class _RetryPolicy(NamedTuple):
    """What a task run is created with: a mapped parent's children get the parent's."""

    max_retries: int
    retry_delay_seconds: float


def _insert_on_conflict(conn: AsyncConnection, table: sa.Table) -> Any:
    """An INSERT that can say ON CONFLICT, in the connection's dialect."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


async def create_flow(
    conn: AsyncConnection,
    *,
    name: str,
    entrypoint: str | None = None,
    default_entrypoint: str | None = None,
    description: str | None = None,
    labels: Sequence[str] | None = None,
    source_hash: str | None = None,
    tasks: Sequence[Mapping[str, Any]] = (),
) -> Row[Any]:
    """Create the flow ``name`` or update it; its version goes up when anything registered
    about it changes (entrypoint, description, labels, source hash, its task list). Fields
    left out keep their value. Tasks are matched by slug and never deleted (runs refer to them).

    ``default_entrypoint`` is what a runtime sends: it is recorded only while the flow has no
    entrypoint, so where a run happened to start never replaces a registered entrypoint.
    """
    if entrypoint is not None and default_entrypoint is not None:
        raise InputError(
            f"give entrypoint {entrypoint!r} or default_entrypoint {default_entrypoint!r},"
            " not both."
        )
    if labels is not None and not all(isinstance(label, str) and label for label in labels):
        raise InputError(f"labels {list(labels)!r} must be non-empty strings.")
    flow = tables.flow
    inserted = await conn.execute(
        _insert_on_conflict(conn, flow)
        .values(
            id=uuid.uuid4(),
            name=name,
            version=1,
            entrypoint=entrypoint or default_entrypoint,
            labels=list(labels or []),
        )
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(flow.c.id)
    )
    created = inserted.one_or_none() is not None
    row = (await conn.execute(sa.select(flow).where(flow.c.name == name).with_for_update())).one()
    if entrypoint is None and row.entrypoint is None:
        entrypoint = default_entrypoint
    wanted: dict[str, Any] = {
        key: value
        for key, value in (
            ("entrypoint", entrypoint),
            ("description", description),
            ("labels", None if labels is None else list(labels)),
            ("source_hash", source_hash),
        )
        if value is not None
    }
    values = {key: value for key, value in wanted.items() if getattr(row, key) != value}
    changed = bool(values)
    for spec in tasks:
        changed |= await _upsert_task(conn, row.id, spec)
    if changed and not created:
        values["version"] = row.version + 1
    if values:
        await conn.execute(sa.update(flow).where(flow.c.id == row.id).values(values))
    return (await conn.execute(sa.select(flow).where(flow.c.id == row.id))).one()


async def _upsert_task(conn: AsyncConnection, flow_id: uuid.UUID, spec: Mapping[str, Any]) -> bool:
    """Create or update one task of a flow; whether anything about it changed."""
    slug = spec.get("slug")
    if not isinstance(slug, str) or not slug:
        raise InputError(f"task slug {slug!r} is not a non-empty string.")
    unknown = sorted(set(spec) - {"slug", *_TASK_FIELDS})
    if unknown:
        raise InputError(f"task {slug!r} has unknown fields {unknown!r}.")
    task = tables.task
    wanted = {key: spec[key] for key in _TASK_FIELDS if spec.get(key) is not None}
    wanted.setdefault("name", _task_name(slug))
    # Runs of one flow reach a new task together: the database picks the one creator.
    created = await conn.scalar(
        _insert_on_conflict(conn, task)
        .values(id=uuid.uuid4(), flow_id=flow_id, slug=slug, **wanted)
        .on_conflict_do_nothing(index_elements=["flow_id", "slug"])
        .returning(task.c.id)
    )
    if created is not None:
        return True
    existing = (
        await conn.execute(sa.select(task).where(task.c.flow_id == flow_id, task.c.slug == slug))
    ).one()
    changes = {k: v for k, v in wanted.items() if getattr(existing, k) != v}
    if changes:
        await conn.execute(sa.update(task).where(task.c.id == existing.id).values(changes))
    return bool(changes)


def _task_name(slug: str) -> str:
    """``say_hello-1`` -> ``say_hello``: slugs are ``<task name>-<n>``."""
    name, _, n = slug.rpartition("-")
    return name if name and n.isdigit() else slug


async def _flow_id(conn: AsyncConnection, flow_id: uuid.UUID | None, flow_name: str | None) -> Any:
    flow = tables.flow
    if (flow_id is None) == (flow_name is None):
        raise InputError(
            f"give exactly one of flow_id and flow_name; got flow_id={flow_id!r},"
            f" flow_name={flow_name!r}."
        )
    if flow_id is not None:
        found = await conn.scalar(sa.select(flow.c.id).where(flow.c.id == flow_id))
        if found is None:
            raise InputError(f"flow {str(flow_id)!r} does not exist.")
        return found
    found = await conn.scalar(sa.select(flow.c.id).where(flow.c.name == flow_name))
    if found is None:
        raise InputError(f"flow {flow_name!r} does not exist; register it with create_flow.")
    return found


async def create_flow_run(
    conn: AsyncConnection,
    *,
    flow_id: uuid.UUID | None = None,
    flow_name: str | None = None,
    parameters: Any = None,
    context: Any = None,
    labels: Sequence[str] | None = None,
    flow_run_name: str | None = None,
    scheduled_start_time: dt.datetime | None = None,
    idempotency_key: str | None = None,
    parent_task_run_id: uuid.UUID | None = None,
    pending: bool = False,
    now: dt.datetime | None = None,
) -> Row[Any]:
    """Schedule a run of a flow (Scheduled at ``scheduled_start_time``, default now).

    With an ``idempotency_key``, asking again returns the run the first call created.
    ``pending``: the creator runs it at once, so it moves on to Pending in the same
    transaction, through the state rules; an agent never sees it Scheduled and claims it.
    """
    now = now or utcnow()
    flow = await _flow_id(conn, flow_id, flow_name)
    if labels is None:  # the flow's own labels, as registered
        labels = await conn.scalar(sa.select(tables.flow.c.labels).where(tables.flow.c.id == flow))
    for name, value, kind in (("parameters", parameters, Mapping), ("context", context, Mapping)):
        if value is not None and not isinstance(value, kind):
            raise InputError(f"{name} {value!r} is not an object.")
    if parent_task_run_id is not None:
        exists = await conn.scalar(
            sa.select(tables.task_run.c.id).where(tables.task_run.c.id == parent_task_run_id)
        )
        if exists is None:
            raise InputError(f"parent task run {str(parent_task_run_id)!r} does not exist.")
    id = uuid.uuid4()
    state = State(type=StateType.SCHEDULED, name="Scheduled", timestamp=now)
    table = tables.flow_run
    statement = _insert_on_conflict(conn, table).values(
        id=id,
        flow_id=flow,
        name=flow_run_name or f"run-{id.hex[:8]}",
        parameters=dict(parameters or {}),
        context=dict(context or {}),
        labels=list(labels or []),
        state=state.name,
        state_type=state.type.value,
        state_timestamp=now,
        serialized_state=state.serialize(),
        version=1,
        scheduled_start_time=scheduled_start_time or now,
        idempotency_key=idempotency_key,
        parent_task_run_id=parent_task_run_id,
        created=now,
        updated=now,
    )
    if idempotency_key is not None:
        statement = statement.on_conflict_do_nothing(index_elements=["flow_id", "idempotency_key"])
    inserted = (await conn.execute(statement.returning(table.c.id))).one_or_none()
    if inserted is None:  # this key made a run before: that run is the answer
        where = sa.and_(table.c.flow_id == flow, table.c.idempotency_key == idempotency_key)
        return (await conn.execute(sa.select(table).where(where))).one()
    await conn.execute(
        sa.insert(tables.flow_run_state).values(history_row("flow_run", id, state, 1))
    )
    if pending:
        await set_flow_run_state(conn, id, 1, {"type": "PENDING"}, now=now)
    return (await conn.execute(sa.select(table).where(table.c.id == id))).one()


async def get_or_create_task_run(
    conn: AsyncConnection,
    *,
    flow_run_id: uuid.UUID,
    task_slug: str,
    map_index: int = -1,
    max_retries: int | None = None,
    retry_delay_seconds: float | None = None,
    cache_key: str | None = None,
    tags: Sequence[str] | None = None,
    now: dt.datetime | None = None,
) -> Row[Any]:
    """The task run of ``task_slug`` in a flow run (and map index), created Pending if new.

    The task itself is created on first use: flows that build their graph as they run only
    learn their tasks' slugs then.
    """
    now = now or utcnow()
    if map_index < -1:
        raise InputError(f"map_index {map_index!r} is invalid; expected -1 or a child index >= 0.")
    flow_id = await conn.scalar(
        sa.select(tables.flow_run.c.flow_id).where(tables.flow_run.c.id == flow_run_id)
    )
    if flow_id is None:
        raise InputError(f"flow run {str(flow_run_id)!r} does not exist.")
    spec: dict[str, Any] = {"slug": task_slug}
    if max_retries is not None:
        if max_retries < 0:
            raise InputError(f"max_retries {max_retries!r} must be zero or more.")
        spec["max_retries"] = max_retries
    if retry_delay_seconds is not None:
        if retry_delay_seconds < 0:
            raise InputError(f"retry_delay_seconds {retry_delay_seconds!r} must be zero or more.")
        spec["retry_delay_seconds"] = retry_delay_seconds
    if tags is not None:
        spec["tags"] = list(tags)
    await _upsert_task(conn, flow_id, spec)
    task = (
        await conn.execute(
            sa.select(tables.task).where(
                tables.task.c.flow_id == flow_id, tables.task.c.slug == task_slug
            )
        )
    ).one()
    # A new run keeps the policy it is created with; the task row only has the latest.
    policy = _RetryPolicy(
        task.max_retries if max_retries is None else max_retries,
        task.retry_delay_seconds if retry_delay_seconds is None else retry_delay_seconds,
    )
    rows = await _get_or_create_task_runs(
        conn, flow_run_id, task, range(map_index, map_index + 1), cache_key, policy, now
    )
    return rows[0]


async def get_or_create_mapped_task_run_children(
    conn: AsyncConnection,
    *,
    flow_run_id: uuid.UUID,
    task_slug: str,
    max_map_index: int,
    now: dt.datetime | None = None,
) -> list[Row[Any]]:
    """Children 0..max_map_index of a mapped parent task run, created Pending if new.

    The parent (map_index -1) must exist. Its task becomes mapped here, unless the parent
    already ran as a single task run: then it is not a mapped parent and this is an error.
    """
    now = now or utcnow()
    if not 0 <= max_map_index < MAX_MAPPED_CHILDREN:
        raise InputError(
            f"max_map_index {max_map_index!r} is out of range; expected 0 to"
            f" {MAX_MAPPED_CHILDREN - 1}."
        )
    task_run, task = tables.task_run, tables.task
    # The parent run's attempt count, state and retry policy (which its children get), with
    # its task's columns (id, name, mapped).
    parent = (
        await conn.execute(
            sa.select(
                task_run.c.run_count,
                task_run.c.state_type,
                task_run.c.max_retries.label("run_max_retries"),
                task_run.c.retry_delay_seconds.label("run_retry_delay_seconds"),
                task,
            )
            .join(task, task.c.id == task_run.c.task_id)
            .where(
                task_run.c.flow_run_id == flow_run_id,
                task.c.slug == task_slug,
                task_run.c.map_index == -1,
            )
        )
    ).one_or_none()
    if parent is None:
        raise InputError(
            f"task run {task_slug!r} of flow run {str(flow_run_id)!r} does not exist; create"
            " the mapped parent with get_or_create_task_run first."
        )
    if not parent.mapped:
        if parent.run_count > 0 or StateType(parent.state_type).terminal:
            raise InputError(
                f"task run {task_slug!r} of flow run {str(flow_run_id)!r} is not a mapped"
                " parent: it already ran as a single task run."
            )
        await conn.execute(sa.update(task).where(task.c.id == parent.id).values(mapped=True))
    policy = _RetryPolicy(parent.run_max_retries, parent.run_retry_delay_seconds)
    return await _get_or_create_task_runs(
        conn, flow_run_id, parent, range(0, max_map_index + 1), None, policy, now
    )


async def _get_or_create_task_runs(
    conn: AsyncConnection,
    flow_run_id: uuid.UUID,
    task: Row[Any],
    map_indexes: range,
    cache_key: str | None,
    policy: _RetryPolicy,
    now: dt.datetime,
) -> list[Row[Any]]:
    """The task runs of ``task`` at ``map_indexes``, creating the missing ones Pending.

    A few statements for any number of indexes: the missing runs and their first states
    inserted together (conflicts skipped), then one read of the contiguous range.
    """
    table = tables.task_run
    state = State(type=StateType.PENDING, name="Pending", timestamp=now)
    if conn.dialect.name == "postgresql":
        statement = _pg_create_task_runs(flow_run_id, task, map_indexes, cache_key, policy, state)
        await conn.execute(statement)
    else:
        await _create_task_runs(conn, flow_run_id, task, map_indexes, cache_key, policy, state)
    found = (
        await conn.execute(
            sa.select(table).where(
                table.c.flow_run_id == flow_run_id,
                table.c.task_id == task.id,
                table.c.map_index.between(map_indexes.start, map_indexes.stop - 1),
            )
        )
    ).all()
    by_index = {row.map_index: row for row in found}
    return [by_index[i] for i in map_indexes]


def _pg_create_task_runs(
    flow_run_id: uuid.UUID,
    task: Row[Any],
    map_indexes: range,
    cache_key: str | None,
    policy: _RetryPolicy,
    state: State,
) -> sa.Insert:
    """ONE statement that creates the missing runs and their first states, whatever the
    number of indexes: the rows come from ``generate_series`` in the database, each with
    a random id of its own, so 10,000 children cost one short statement, not a 10,000-row
    VALUES list that the driver has to parse."""
    table, history = tables.task_run, tables.task_run_state
    index = sa.func.generate_series(map_indexes.start, map_indexes.stop - 1).column_valued("i")
    now = sa.literal(state.timestamp, Timestamp)
    serialized = sa.literal(state.serialize(), Jsonb)
    runs = {
        "id": sa.func.gen_random_uuid(),
        "flow_run_id": sa.literal(flow_run_id, sa.Uuid),
        "task_id": sa.literal(task.id, sa.Uuid),
        "map_index": index,
        "name": sa.literal(task.name),
        "state": sa.literal(state.name),
        "state_type": sa.literal(state.type.value),
        "state_timestamp": now,
        "serialized_state": serialized,
        "version": sa.literal(1),
        "run_count": sa.literal(0),
        "max_retries": sa.literal(policy.max_retries),
        "retry_delay_seconds": sa.literal(policy.retry_delay_seconds, sa.Float),
        "cache_key": sa.literal(cache_key, sa.Text),
        "created": now,
        "updated": now,
    }
    created = (
        postgresql.insert(table)
        .from_select(list(runs), sa.select(*runs.values()))
        .on_conflict_do_nothing(index_elements=["flow_run_id", "task_id", "map_index"])
        .returning(table.c.id)
        .cte("created")
    )
    first = history_row("task_run", uuid.uuid4(), state, 1)
    states = {
        "id": sa.func.gen_random_uuid(),
        "task_run_id": created.c.id,
        **{
            name: sa.literal(first[name], history.c[name].type)
            for name in ("timestamp", "state", "type", "message", "result", "details")
        },
        "serialized_state": serialized,
        "version": sa.literal(1),
    }
    return (
        sa.insert(history)
        .from_select(list(states), sa.select(*states.values()).select_from(created))
        .add_cte(created)
    )


async def _create_task_runs(
    conn: AsyncConnection,
    flow_run_id: uuid.UUID,
    task: Row[Any],
    map_indexes: range,
    cache_key: str | None,
    policy: _RetryPolicy,
    state: State,
) -> None:
    """The same on SQLite, which has no ``generate_series``: the rows are made here and
    inserted together (SQLAlchemy packs them into as few statements as the driver allows);
    in-process, a long statement costs no round trip."""
    table, now = tables.task_run, state.timestamp
    rows = [
        {
            "id": uuid.uuid4(),
            "flow_run_id": flow_run_id,
            "task_id": task.id,
            "map_index": map_index,
            "name": task.name,
            "state": state.name,
            "state_type": state.type.value,
            "state_timestamp": now,
            "serialized_state": state.serialize(),
            "version": 1,
            "run_count": 0,
            **policy._asdict(),
            "cache_key": cache_key,
            "created": now,
            "updated": now,
        }
        for map_index in map_indexes
    ]
    new_ids = (
        (
            await conn.execute(
                _insert_on_conflict(conn, table)
                .on_conflict_do_nothing(index_elements=["flow_run_id", "task_id", "map_index"])
                .returning(table.c.id),
                rows,
            )
        )
        .scalars()
        .all()
    )
    if new_ids:
        await conn.execute(
            sa.insert(tables.task_run_state),
            [history_row("task_run", id, state, 1) for id in new_ids],
        )
