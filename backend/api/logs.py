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
    id: uuid.UUID | None = strawberry.field(
        default=None,
        description="Made by the client: a record sent again is stored once.",
    )


@strawberry.input(name="write_run_logs_input")
class WriteRunLogsInput:
    logs: list[RunLogInput]


@strawberry.type(name="rejected_log")
class RejectedLog:
    index: int = strawberry.field(description="The record's position in the batch.")
    message: str


@strawberry.type(name="write_run_logs_payload")
class WriteRunLogsPayload:
    count: int = strawberry.field(description="How many of the records are stored.")
    rejected: list[RejectedLog] = strawberry.field(
        description="The records that were not stored, and why; the others were."
    )


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Store many log records of flow and task runs at once.")
    async def write_run_logs(self, info: Info, input: WriteRunLogsInput) -> WriteRunLogsPayload:
        logs = [vars(log) for log in input.logs]
        async with info.context.db.begin() as conn:
            written = await models.write_run_logs(conn, logs)
        rejected = [RejectedLog(index=i, message=message) for i, message in written.rejected]
        return WriteRunLogsPayload(count=written.count, rejected=rejected)
