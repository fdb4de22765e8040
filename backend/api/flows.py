"""Mutations on flows: ``create_flow``."""

from __future__ import annotations

import uuid

import strawberry
from strawberry.types import Info

from backend import models


@strawberry.input(name="task_input", description="A task of a flow, keyed by its slug.")
class TaskInput:
    slug: str
    name: str | None = None
    mapped: bool | None = None
    max_retries: int | None = None
    retry_delay_seconds: float | None = None
    tags: list[str] | None = None


@strawberry.input(name="create_flow_input")
class CreateFlowInput:
    name: str
    entrypoint: str | None = None
    description: str | None = None
    tasks: list[TaskInput] | None = None


@strawberry.type(name="create_flow_payload")
class CreateFlowPayload:
    id: uuid.UUID
    version: int


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Register a flow, or update it: same name, same flow. Its version goes"
        " up when its entrypoint or its tasks change."
    )
    async def create_flow(self, info: Info, input: CreateFlowInput) -> CreateFlowPayload:
        tasks = [
            {key: value for key, value in vars(task).items() if value is not None}
            for task in input.tasks or []
        ]
        async with info.context.db.begin() as conn:
            row = await models.create_flow(
                conn,
                name=input.name,
                entrypoint=input.entrypoint,
                description=input.description,
                tasks=tasks,
            )
        return CreateFlowPayload(id=row.id, version=row.version)
