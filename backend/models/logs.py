"""Writing run logs, in batches."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.database import tables
from backend.database.types import utcnow
from backend.errors import InputError
from backend.orchestration.states import check_storable

MAX_LOGS_PER_REQUEST = 10_000


@dataclass(frozen=True)
class LogsWritten:
    """What became of a batch: how many records are stored, and why the others are not."""

    count: int
    rejected: list[tuple[int, str]]  # (index in the batch, what is wrong with it)


async def write_run_logs(conn: AsyncConnection, logs: Sequence[Mapping[str, Any]]) -> LogsWritten:
    """Insert many log records in one statement.

    Each record is judged on its own: one that names a flow run (or a task run of it) that
    does not exist, or holds text the database cannot store, is refused with the reason and
    the rest are written. A record with a client-made ``id`` that is already stored (a batch
    sent again after its answer was lost) is not stored twice.
    """
    if len(logs) > MAX_LOGS_PER_REQUEST:
        raise InputError(
            f"{len(logs)} log records in one request is over the limit of"
            f" {MAX_LOGS_PER_REQUEST}; send them in several requests."
        )
    if not logs:
        return LogsWritten(0, [])
    rejected = await _refused(conn, logs)
    now = utcnow()
    rows = [
        {
            "id": log.get("id") or uuid.uuid4(),
            "flow_run_id": log["flow_run_id"],
            "task_run_id": log.get("task_run_id"),
            # Stamped on arrival a microsecond apart, so a batch keeps the order it was sent in.
            "timestamp": log.get("timestamp") or now + dt.timedelta(microseconds=i),
            "level": log["level"],
            "name": log["name"],
            "message": log["message"],
        }
        for i, log in enumerate(logs)
        if i not in rejected
    ]
    if rows:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        await conn.execute(dialect.insert(tables.log).on_conflict_do_nothing(), rows)
    return LogsWritten(len(rows), sorted(rejected.items()))


async def _refused(conn: AsyncConnection, logs: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """The records that cannot be stored, by index, with the reason. Two queries at most."""
    flow_run, task_run = tables.flow_run, tables.task_run
    flow_run_ids = {log["flow_run_id"] for log in logs}
    found = set(
        (await conn.execute(sa.select(flow_run.c.id).where(flow_run.c.id.in_(flow_run_ids))))
        .scalars()
        .all()
    )
    task_run_ids = {log["task_run_id"] for log in logs if log.get("task_run_id")}
    owners: dict[Any, Any] = {}
    if task_run_ids:
        owners = dict(
            (
                await conn.execute(
                    sa.select(task_run.c.id, task_run.c.flow_run_id).where(
                        task_run.c.id.in_(task_run_ids)
                    )
                )
            ).all()
        )
    refused: dict[int, str] = {}
    for i, log in enumerate(logs):
        task_run_id = log.get("task_run_id")
        if log["flow_run_id"] not in found:
            refused[i] = f"flow run {str(log['flow_run_id'])!r} does not exist."
        elif task_run_id and owners.get(task_run_id) != log["flow_run_id"]:
            refused[i] = (
                f"task run {str(task_run_id)!r} does not exist in flow run"
                f" {str(log['flow_run_id'])!r}."
            )
        else:
            try:
                check_storable(log["name"], "log name")
                check_storable(log["message"], "log message")
            except InputError as error:
                refused[i] = str(error)
    return refused
