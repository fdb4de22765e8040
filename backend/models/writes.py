"""Insert one row into each table, exactly as given.

These are the plain inserts: no history row, no state rules, nothing checked beyond the
database's constraints. They serve imports, tests and benchmarks. What clients do (create a
flow run, propose a state, claim a run) is in ``runs`` and ``states``, built on the rules.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.database import tables
from backend.errors import InputError


async def _insert(conn: AsyncConnection, table: sa.Table, values: dict[str, Any]) -> Row[Any]:
    unknown = sorted(set(values) - set(table.c.keys()))
    if unknown:
        raise InputError(
            f"{unknown!r} are not columns of {table.name}; expected some of {table.c.keys()}."
        )
    result = await conn.execute(sa.insert(table).values(values).returning(*table.c))
    return result.one()


async def insert_flow(conn: AsyncConnection, *, name: str, **columns: Any) -> Row[Any]:
    return await _insert(conn, tables.flow, {"name": name, **columns})


async def insert_task(
    conn: AsyncConnection, *, flow_id: uuid.UUID, slug: str, name: str, **columns: Any
) -> Row[Any]:
    return await _insert(
        conn, tables.task, {"flow_id": flow_id, "slug": slug, "name": name, **columns}
    )


async def insert_flow_run(
    conn: AsyncConnection,
    *,
    flow_id: uuid.UUID,
    state: str = "Scheduled",
    state_type: str = "SCHEDULED",
    **columns: Any,
) -> Row[Any]:
    id = columns.pop("id", None) or uuid.uuid4()
    columns.setdefault("name", f"run-{id.hex[:8]}")
    return await _insert(
        conn,
        tables.flow_run,
        {"id": id, "flow_id": flow_id, "state": state, "state_type": state_type, **columns},
    )


async def insert_task_run(
    conn: AsyncConnection,
    *,
    flow_run_id: uuid.UUID,
    task_id: uuid.UUID,
    name: str,
    state: str = "Pending",
    state_type: str = "PENDING",
    **columns: Any,
) -> Row[Any]:
    values = {
        "flow_run_id": flow_run_id,
        "task_id": task_id,
        "name": name,
        "state": state,
        "state_type": state_type,
        **columns,
    }
    return await _insert(conn, tables.task_run, values)


async def insert_flow_run_state(
    conn: AsyncConnection,
    *,
    flow_run_id: uuid.UUID,
    state: str,
    type: str,
    version: int,
    **columns: Any,
) -> Row[Any]:
    values = {"flow_run_id": flow_run_id, "state": state, "type": type, "version": version}
    return await _insert(conn, tables.flow_run_state, {**values, **columns})


async def insert_task_run_state(
    conn: AsyncConnection,
    *,
    task_run_id: uuid.UUID,
    state: str,
    type: str,
    version: int,
    **columns: Any,
) -> Row[Any]:
    values = {"task_run_id": task_run_id, "state": state, "type": type, "version": version}
    return await _insert(conn, tables.task_run_state, {**values, **columns})


async def insert_log(
    conn: AsyncConnection,
    *,
    flow_run_id: uuid.UUID,
    level: int,
    name: str,
    message: str,
    **columns: Any,
) -> Row[Any]:
    values = {"flow_run_id": flow_run_id, "level": level, "name": name, "message": message}
    return await _insert(conn, tables.log, {**values, **columns})
