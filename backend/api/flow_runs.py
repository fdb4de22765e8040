"""Mutations on flow runs: create, propose states, cancel, delete, heartbeat, claim."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import strawberry
from strawberry.types import Info

from backend import models
from backend.api.scalars import Jsonb, check_name, check_names
from backend.api.states import HeartbeatPayload, SetStatesPayload, StateChange, set_states
from backend.api.tables import TYPES

FlowRun: Any = TYPES.object["flow_run"]


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
    pending: bool = strawberry.field(
        default=False,
        description="Create the run Pending, not Scheduled: its creator runs it now, so no"
        " agent may claim it.",
    )


@strawberry.type(name="create_flow_run_payload")
class CreateFlowRunPayload:
    id: uuid.UUID
    version: int


@strawberry.input(name="flow_run_state_proposal")
class FlowRunStateProposal:
    flow_run_id: uuid.UUID
    version: int
    state: Jsonb
    proposal_id: uuid.UUID | None = strawberry.field(
        default=None,
        description="Made by the client: a proposal sent again gets its first answer.",
    )


@strawberry.input(name="set_flow_run_states_input")
class SetFlowRunStatesInput:
    states: list[FlowRunStateProposal]


@strawberry.input(name="cancel_flow_run_input")
class CancelFlowRunInput:
    flow_run_id: uuid.UUID


@strawberry.input(name="delete_flow_run_input")
class DeleteFlowRunInput:
    flow_run_id: uuid.UUID


@strawberry.input(name="update_flow_run_heartbeat_input")
class UpdateFlowRunHeartbeatInput:
    flow_run_id: uuid.UUID


@strawberry.type(name="delete_flow_run_payload")
class DeleteFlowRunPayload:
    id: uuid.UUID


@strawberry.input(name="claim_flow_runs_input")
class ClaimFlowRunsInput:
    limit: int = 1
    labels: list[str] | None = strawberry.field(
        default=None, description="The agent's labels; it gets runs whose labels it all has."
    )


@strawberry.type(name="claim_flow_runs_payload")
class ClaimFlowRunsPayload:
    flow_runs: list[FlowRun]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Schedule a run of a flow. The same idempotency key gives the same run."
    )
    async def create_flow_run(self, info: Info, input: CreateFlowRunInput) -> CreateFlowRunPayload:
        where = "create_flow_run_input"
        for field in ("flow_name", "flow_run_name", "idempotency_key"):
            check_name(getattr(input, field), f"{where}.{field}")
        check_names(input.labels, f"{where}.labels")
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
                pending=input.pending,
            )
        return CreateFlowRunPayload(id=row.id, version=row.version)

    @strawberry.mutation(description="Propose states for flow runs; each is judged on its own.")
    async def set_flow_run_states(
        self, info: Info, input: SetFlowRunStatesInput
    ) -> SetStatesPayload:
        proposals = [
            models.Proposed(p.flow_run_id, p.version, p.state, p.proposal_id) for p in input.states
        ]
        return await set_states(info, "flow_run", proposals)

    @strawberry.mutation(
        description="Cancel a flow run: Cancelled if not started, else Cancelling until its"
        " runtime stops it."
    )
    async def cancel_flow_run(self, info: Info, input: CancelFlowRunInput) -> StateChange:
        async with info.context.db.begin() as conn:
            return StateChange.of(await models.cancel_flow_run(conn, input.flow_run_id))

    @strawberry.mutation(description="Delete a flow run with its task runs, states and logs.")
    async def delete_flow_run(self, info: Info, input: DeleteFlowRunInput) -> DeleteFlowRunPayload:
        async with info.context.db.begin() as conn:
            await models.delete_flow_run(conn, input.flow_run_id)
        return DeleteFlowRunPayload(id=input.flow_run_id)

    @strawberry.mutation(description="Note that a flow run's process is alive.")
    async def update_flow_run_heartbeat(
        self, info: Info, input: UpdateFlowRunHeartbeatInput
    ) -> HeartbeatPayload:
        async with info.context.db.begin() as conn:
            row = await models.record_heartbeat(conn, "flow_run", input.flow_run_id)
        return HeartbeatPayload.of(row)

    @strawberry.mutation(
        description="For agents: move up to limit due flow runs to Pending and return them."
        " Concurrent agents never get the same run."
    )
    async def claim_flow_runs(self, info: Info, input: ClaimFlowRunsInput) -> ClaimFlowRunsPayload:
        check_names(input.labels, "claim_flow_runs_input.labels")
        async with info.context.db.begin() as conn:
            rows = await models.claim_flow_runs(conn, limit=input.limit, labels=input.labels or [])
        return ClaimFlowRunsPayload(flow_runs=rows)
