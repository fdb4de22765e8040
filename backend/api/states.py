"""The answer every state change gets: ``state_change`` (status, reason, state in force)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Sequence
from typing import Any

import strawberry
from strawberry.types import Info

from backend import models
from backend.api.scalars import Jsonb
from backend.errors import InputError
from backend.models import Database

# Proposals per set_*_states request. A client with more sends several requests; a larger
# batch would hold its row locks for too long.
MAX_STATES_PER_REQUEST = 10_000


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

    @classmethod
    def of(cls, change: models.StateChange) -> StateChange:
        return cls(
            id=change.id,
            status=StateChangeStatus(change.status.value),
            message=change.message,
            state=Jsonb(change.state),
        )


@strawberry.type(name="set_states_payload")
class SetStatesPayload:
    states: list[StateChange]


async def set_states(
    info: Info, kind: str, proposals: Sequence[models.Proposed]
) -> SetStatesPayload:
    """Judge a batch of proposals in one transaction, each on its own."""
    changes = await judge(info.context.db, kind, proposals)
    return SetStatesPayload(states=[StateChange.of(change) for change in changes])


async def judge(
    db: Database, kind: str, proposals: Sequence[models.Proposed]
) -> list[models.StateChange]:
    """The resolvers' and the compiled path's one way to judge proposals.

    Raises:
        InputError: Too many proposals (before anything is written).
    """
    if len(proposals) > MAX_STATES_PER_REQUEST:
        raise InputError(
            f"{len(proposals)} states in one request is over the limit of"
            f" {MAX_STATES_PER_REQUEST}; send them in several requests."
        )
    async with db.begin() as conn:
        return await models.set_states(conn, kind, proposals)


@strawberry.type(name="heartbeat_payload")
class HeartbeatPayload:
    id: uuid.UUID
    heartbeat: dt.datetime
    state: str = strawberry.field(description="The run's state: Cancelling means stop.")
    state_type: str

    @classmethod
    def of(cls, row: Any) -> HeartbeatPayload:
        return cls(id=row.id, heartbeat=row.heartbeat, state=row.state, state_type=row.state_type)
