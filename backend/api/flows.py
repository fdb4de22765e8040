"""Mutations on flows: ``create_flow``."""

from __future__ import annotations

import uuid

import strawberry
from strawberry.types import Info

from backend import models
from backend.api.scalars import check_name, check_names


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
    entrypoint: str | None = strawberry.field(
        default=None,
        description="Where an agent finds the flow: 'path/file.py:name' or 'package.module:name'.",
    )
    default_entrypoint: str | None = strawberry.field(
        default=None,
        description="Recorded only while the flow has no entrypoint (what a runtime sends):"
        " never replaces a registered one.",
    )
    description: str | None = None
    labels: list[str] | None = strawberry.field(
        default=None, description="Labels of the flow's runs that are created without any."
    )
    source_hash: str | None = strawberry.field(
        default=None, description="A hash of the source registered; a new one bumps the version."
    )
    tasks: list[TaskInput] | None = None


@strawberry.type(name="create_flow_payload")
class CreateFlowPayload:
    id: uuid.UUID
    version: int


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Register a flow, or update it: same name, same flow. Its version goes"
        " up when its entrypoint, description, labels, source hash or tasks change."
    )
    async def create_flow(self, info: Info, input: CreateFlowInput) -> CreateFlowPayload:
        _check(input)
        tasks = [
            {key: value for key, value in vars(task).items() if value is not None}
            for task in input.tasks or []
        ]
        async with info.context.db.begin() as conn:
            row = await models.create_flow(
                conn,
                name=input.name,
                entrypoint=input.entrypoint,
                default_entrypoint=input.default_entrypoint,
                description=input.description,
                labels=input.labels,
                source_hash=input.source_hash,
                tasks=tasks,
            )
        return CreateFlowPayload(id=row.id, version=row.version)


def _check(input: CreateFlowInput) -> None:
    """Refuse names too long to store, before any SQL (``backend.api.scalars``)."""
    check_name(input.name, "create_flow_input.name")
    check_names(input.labels, "create_flow_input.labels")
    for i, task in enumerate(input.tasks or ()):
        check_name(task.slug, f"create_flow_input.tasks[{i}].slug")
        check_name(task.name, f"create_flow_input.tasks[{i}].name")
        check_names(task.tags, f"create_flow_input.tasks[{i}].tags")
