"""Writing run logs, in batches."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.database import tables
from backend.database.types import utcnow
from backend.errors import InputError

MAX_LOGS_PER_REQUEST = 10_000


async def write_run_logs(conn: AsyncConnection, logs: Sequence[Mapping[str, Any]]) -> int:
    """Insert many log records in one statement; how many were written.

    Every record must name an existing flow run (and, if it names one, an existing task run
    of that flow run); otherwise nothing is written and the error names the first bad id.
    """
    if len(logs) > MAX_LOGS_PER_REQUEST:
        raise InputError(
            f"{len(logs)} log records in one request is over the limit of"
            f" {MAX_LOGS_PER_REQUEST}; send them in several requests."
        )
    if not logs:
        return 0
    await _check_runs(conn, logs)
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "flow_run_id": log["flow_run_id"],
            "task_run_id": log.get("task_run_id"),
            # Stamped on arrival a microsecond apart, so a batch keeps the order it was sent in.
            "timestamp": log.get("timestamp") or now + dt.timedelta(microseconds=i),
            "level": log["level"],
            "name": log["name"],
            "message": log["message"],
        }
        for i, log in enumerate(logs)
    ]
    await conn.execute(sa.insert(tables.log), rows)
    return len(rows)


async def _check_runs(conn: AsyncConnection, logs: Sequence[Mapping[str, Any]]) -> None:
    flow_run, task_run = tables.flow_run, tables.task_run
    flow_run_ids = {log["flow_run_id"] for log in logs}
    found = set(
        (await conn.execute(sa.select(flow_run.c.id).where(flow_run.c.id.in_(flow_run_ids))))
        .scalars()
        .all()
    )
    for log in logs:
        if log["flow_run_id"] not in found:
            raise InputError(f"flow run {str(log['flow_run_id'])!r} does not exist.")
    task_run_ids = {log["task_run_id"] for log in logs if log.get("task_run_id")}
    if not task_run_ids:
        return
    owners = dict(
        (
            await conn.execute(
                sa.select(task_run.c.id, task_run.c.flow_run_id).where(
                    task_run.c.id.in_(task_run_ids)
                )
            )
        ).all()
    )
    for log in logs:
        task_run_id = log.get("task_run_id")
        if task_run_id and owners.get(task_run_id) != log["flow_run_id"]:
            raise InputError(
                f"task run {str(task_run_id)!r} does not exist in flow run"
                f" {str(log['flow_run_id'])!r}."
            )
