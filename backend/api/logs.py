"""Mutations on logs: ``write_run_logs``, batched."""

from __future__ import annotations

import datetime as dt
import uuid

import strawberry
from strawberry.types import Info

from backend import models


@strawberry.input(name="run_log_input")
class RunLogInput:
    flow_run_id: uuid.UUID
    level: int
    name: str
    message: str
    task_run_id: uuid.UUID | None = None
    timestamp: dt.datetime | None = None


@strawberry.input(name="write_run_logs_input")
class WriteRunLogsInput:
    logs: list[RunLogInput]


@strawberry.type(name="write_run_logs_payload")
class WriteRunLogsPayload:
    count: int


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Store many log records of flow and task runs at once.")
    async def write_run_logs(self, info: Info, input: WriteRunLogsInput) -> WriteRunLogsPayload:
        logs = [vars(log) for log in input.logs]
        async with info.context.db.begin() as conn:
            count = await models.write_run_logs(conn, logs)
        return WriteRunLogsPayload(count=count)
