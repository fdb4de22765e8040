"""Mutations on flow runs and task runs: creating them and proposing their states."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

import strawberry
from strawberry.types import Info

from backend import models
from backend.api.scalars import Jsonb
from backend.errors import InputError

# Proposals per set_*_states request. A client with more sends several requests; a larger
# batch would hold its row locks for too long.
MAX_STATES_PER_REQUEST = 10_000


@strawberry.input(name="create_flow_run_input")
class CreateFlowRunInput:
    flow_id: uuid.UUID | None = None
    flow_name: str | None = None
    parameters: Jsonb | None = None
    context: Jsonb | None = None
    labels: list[str] | None = None
    flow_run_name: str | None = None
    scheduled_start_time: dt.datetime | None = None
    idempotency_key: str | None = None
    parent_task_run_id: uuid.UUID | None = None


@strawberry.type(name="create_flow_run_payload")
class CreateFlowRunPayload:
    id: uuid.UUID


@strawberry.input(name="get_or_create_task_run_input")
class GetOrCreateTaskRunInput:
    flow_run_id: uuid.UUID
    task_slug: str
    map_index: int = -1
    max_retries: int | None = None
    retry_delay_seconds: float | None = None
    cache_key: str | None = None


@strawberry.type(name="get_or_create_task_run_payload")
class GetOrCreateTaskRunPayload:
    id: uuid.UUID
    version: int
    state: str
    serialized_state: Jsonb | None


@strawberry.enum(name="state_change_status")
class StateChangeStatus(enum.Enum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    ABORTED = "ABORTED"


@strawberry.type(name="state_change")
class StateChange:
    id: uuid.UUID
    status: StateChangeStatus
    message: str | None
    state: Jsonb | None = strawberry.field(
        description="The state now in force (serialized); it may differ from the one proposed."
    )


@strawberry.type(name="set_states_payload")
class SetStatesPayload:
    states: list[StateChange]


@strawberry.input(name="flow_run_state_proposal")
class FlowRunStateProposal:
    flow_run_id: uuid.UUID
    version: int
    state: Jsonb


@strawberry.input(name="task_run_state_proposal")
class TaskRunStateProposal:
    task_run_id: uuid.UUID
    version: int
    state: Jsonb


@strawberry.input(name="set_flow_run_states_input")
class SetFlowRunStatesInput:
    states: list[FlowRunStateProposal]


@strawberry.input(name="set_task_run_states_input")
class SetTaskRunStatesInput:
    states: list[TaskRunStateProposal]


async def _set_states(info: Info, kind: str, proposals: list[tuple[Any, int, Any]]) -> Any:
    if len(proposals) > MAX_STATES_PER_REQUEST:
        raise InputError(
            f"{len(proposals)} states in one request is over the limit of"
            f" {MAX_STATES_PER_REQUEST}; send them in several requests."
        )
    async with info.context.db.begin() as conn:
        changes = await models.set_states(conn, kind, proposals)
    return SetStatesPayload(
        states=[
            StateChange(
                id=change.id,
                status=StateChangeStatus(change.status.value),
                message=change.message,
                state=Jsonb(change.state),
            )
            for change in changes
        ]
    )


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Schedule a run of a flow. The same idempotency key gives the same run."
    )
    async def create_flow_run(self, info: Info, input: CreateFlowRunInput) -> CreateFlowRunPayload:
        async with info.context.db.begin() as conn:
            row = await models.create_flow_run(
                conn,
                flow_id=input.flow_id,
                flow_name=input.flow_name,
                parameters=input.parameters,
                context=input.context,
                labels=input.labels,
                flow_run_name=input.flow_run_name,
                scheduled_start_time=input.scheduled_start_time,
                idempotency_key=input.idempotency_key,
                parent_task_run_id=input.parent_task_run_id,
            )
        return CreateFlowRunPayload(id=row.id)

    @strawberry.mutation(description="The task run of a task slug in a flow run; Pending if new.")
    async def get_or_create_task_run(
        self, info: Info, input: GetOrCreateTaskRunInput
    ) -> GetOrCreateTaskRunPayload:
        async with info.context.db.begin() as conn:
            row = await models.get_or_create_task_run(
                conn,
                flow_run_id=input.flow_run_id,
                task_slug=input.task_slug,
                map_index=input.map_index,
                max_retries=input.max_retries,
                retry_delay_seconds=input.retry_delay_seconds,
                cache_key=input.cache_key,
            )
        return GetOrCreateTaskRunPayload(
            id=row.id, version=row.version, state=row.state, serialized_state=row.serialized_state
        )

    @strawberry.mutation(description="Propose states for flow runs; each is judged on its own.")
    async def set_flow_run_states(
        self, info: Info, input: SetFlowRunStatesInput
    ) -> SetStatesPayload:
        proposals = [(p.flow_run_id, p.version, p.state) for p in input.states]
        return await _set_states(info, "flow_run", proposals)

    @strawberry.mutation(description="Propose states for task runs; each is judged on its own.")
    async def set_task_run_states(
        self, info: Info, input: SetTaskRunStatesInput
    ) -> SetStatesPayload:
        proposals = [(p.task_run_id, p.version, p.state) for p in input.states]
        return await _set_states(info, "task_run", proposals)
