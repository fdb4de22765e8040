"""Mutations on task runs: get or create (mapped children too), propose states, heartbeat."""

from __future__ import annotations

import uuid

import strawberry
from strawberry.types import Info

from backend import models
from backend.api.scalars import Jsonb, check_name, check_names
from backend.api.states import HeartbeatPayload, SetStatesPayload, set_states


@strawberry.input(name="get_or_create_task_run_input")
class GetOrCreateTaskRunInput:
    flow_run_id: uuid.UUID
    task_slug: str
    map_index: int = -1
    max_retries: int | None = None
    retry_delay_seconds: float | None = None
    cache_key: str | None = None
    tags: list[str] | None = None


@strawberry.type(name="get_or_create_task_run_payload")
class GetOrCreateTaskRunPayload:
    id: uuid.UUID
    version: int
    state: str
    serialized_state: Jsonb | None


@strawberry.input(name="get_or_create_mapped_task_run_children_input")
class GetOrCreateMappedChildrenInput:
    flow_run_id: uuid.UUID
    task_slug: str
    max_map_index: int


@strawberry.type(name="get_or_create_mapped_task_run_children_payload")
class GetOrCreateMappedChildrenPayload:
    ids: list[uuid.UUID] = strawberry.field(description="The children, in map_index order.")


@strawberry.input(name="task_run_state_proposal")
class TaskRunStateProposal:
    task_run_id: uuid.UUID
    version: int
    state: Jsonb
    proposal_id: uuid.UUID | None = strawberry.field(
        default=None,
        description="Made by the client: a proposal sent again gets its first answer.",
    )


@strawberry.input(name="set_task_run_states_input")
class SetTaskRunStatesInput:
    states: list[TaskRunStateProposal]


@strawberry.input(name="update_task_run_heartbeat_input")
class UpdateTaskRunHeartbeatInput:
    task_run_id: uuid.UUID


@strawberry.type
class Mutation:
    @strawberry.mutation(description="The task run of a task slug in a flow run; Pending if new.")
    async def get_or_create_task_run(
        self, info: Info, input: GetOrCreateTaskRunInput
    ) -> GetOrCreateTaskRunPayload:
        check_name(input.task_slug, "get_or_create_task_run_input.task_slug")
        check_name(input.cache_key, "get_or_create_task_run_input.cache_key")
        check_names(input.tags, "get_or_create_task_run_input.tags")
        async with info.context.db.begin() as conn:
            row = await models.get_or_create_task_run(
                conn,
                flow_run_id=input.flow_run_id,
                task_slug=input.task_slug,
                map_index=input.map_index,
                max_retries=input.max_retries,
                retry_delay_seconds=input.retry_delay_seconds,
                cache_key=input.cache_key,
                tags=input.tags,
            )
        return GetOrCreateTaskRunPayload(
            id=row.id, version=row.version, state=row.state, serialized_state=row.serialized_state
        )

    @strawberry.mutation(
        description="All children 0..max_map_index of a mapped parent task run, in one call."
    )
    async def get_or_create_mapped_task_run_children(
        self, info: Info, input: GetOrCreateMappedChildrenInput
    ) -> GetOrCreateMappedChildrenPayload:
        check_name(input.task_slug, "get_or_create_mapped_task_run_children_input.task_slug")
        async with info.context.db.begin() as conn:
            rows = await models.get_or_create_mapped_task_run_children(
                conn,
                flow_run_id=input.flow_run_id,
                task_slug=input.task_slug,
                max_map_index=input.max_map_index,
            )
        return GetOrCreateMappedChildrenPayload(ids=[row.id for row in rows])

    @strawberry.mutation(description="Propose states for task runs; each is judged on its own.")
    async def set_task_run_states(
        self, info: Info, input: SetTaskRunStatesInput
    ) -> SetStatesPayload:
        proposals = [
            models.Proposed(p.task_run_id, p.version, p.state, p.proposal_id) for p in input.states
        ]
        return await set_states(info, "task_run", proposals)

    @strawberry.mutation(description="Note that a task run's process is alive.")
    async def update_task_run_heartbeat(
        self, info: Info, input: UpdateTaskRunHeartbeatInput
    ) -> HeartbeatPayload:
        async with info.context.db.begin() as conn:
            row = await models.record_heartbeat(conn, "task_run", input.task_run_id)
        return HeartbeatPayload.of(row)
