"""Writing accepted states: the run rows' new values and their history rows, in one
statement on PostgreSQL whatever the number of runs."""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.database import tables
from backend.models.snapshots import STATE_COLUMNS
from backend.orchestration.states import State


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


def _written_columns(kind: str) -> tuple[str, ...]:
    """The run columns ``RunSnapshot.values`` sets (besides ``_id``, the row to update)."""
    own = "run_count" if kind == "task_run" else "scheduled_start_time"
    return (*STATE_COLUMNS[1:], "updated", own)


async def write_states(
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
