"""Subscriptions (graphql-transport-ws at ``/graphql``): run events as they commit.

``flow_run_logs`` streams a flow run's log records as the ``log`` rows the query API shows,
from when it subscribes; both complete after the flow run's final state.

``flow_run_events`` watches before it reads (``backend.events.EventHub.watch``), so nothing
that commits between the current state and the stream is lost; an event the current state
already covers (a version not past the one read) is not sent twice. The stream completes
after the flow run's final state, with the events of the transaction that ended it (the
task runs that ended with it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from backend import models
from backend.api.tables import TYPES, plain
from backend.errors import InputError
from backend.events import EventHub, EventsInterrupted, SubscriberTooSlow, Watcher
from backend.models.events import Event, RunEvent

SUBSCRIPTION_CLOSED = "SUBSCRIPTION_CLOSED"
# A log record as the query API shows it: the same fields and relationships.
LogRecord = TYPES.object["log"]
FlowRunBoolExp = TYPES.bool_exp["flow_run"]


@strawberry.type(name="flow_run_event", description="An accepted state of a flow or task run.")
class FlowRunEvent:
    flow_run_id: uuid.UUID
    task_run_id: uuid.UUID | None = strawberry.field(description="null: the flow run itself.")
    task_slug: str | None
    map_index: int | None
    state: str
    state_type: str
    message: str | None
    timestamp: dt.datetime
    version: int

    @classmethod
    def of(cls, event: RunEvent) -> FlowRunEvent:
        return cls(**vars(event))


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description=(
            "The flow run's current state, then every accepted state of it and its task"
            " runs in commit order; completes after the flow run's final state."
        )
    )
    async def flow_run_events(
        self, info: Info, flow_run_id: uuid.UUID
    ) -> AsyncGenerator[FlowRunEvent, None]:
        async with _watching(info, flow_run_id) as (watcher, current):
            yield FlowRunEvent.of(current)
            if current.ends_flow_run:
                return
            versions: dict[uuid.UUID | None, int] = {None: current.version}
            async for batch in watcher.batches():
                for event in batch:
                    if not isinstance(event, RunEvent):
                        continue  # a log record: flow_run_logs's
                    key = event.task_run_id
                    if event.version <= versions.get(key, -1):
                        continue  # the current state read above, or sent already
                    versions[key] = event.version
                    yield FlowRunEvent.of(event)
                if _ends(batch):
                    return

    @strawberry.subscription(
        description=(
            "The flow run's log records as they are written, of ``level`` and above (all"
            " when null); completes after the flow run's final state."
        )
    )
    async def flow_run_logs(
        self, info: Info, flow_run_id: uuid.UUID, level: int | None = None
    ) -> AsyncGenerator[LogRecord, None]:  # type: ignore[valid-type]
        least = level if level is not None else -(2**31)
        async with _watching(info, flow_run_id) as (watcher, current):
            if current.ends_flow_run:
                return  # nothing more will be written (its logs are a query away)
            async for batch in watcher.batches():
                for event in batch:
                    if not isinstance(event, RunEvent) and event.level >= least:
                        yield event
                if _ends(batch):
                    return

    @strawberry.subscription(
        description=(
            "Every accepted state of the flow runs that match ``where`` (all when null), as"
            " they commit: what a live list of runs needs after its first query. Never"
            " completes."
        )
    )
    async def flow_runs_events(
        self,
        info: Info,
        where: FlowRunBoolExp | None = None,  # type: ignore[valid-type]
    ) -> AsyncGenerator[FlowRunEvent, None]:
        condition = plain(where)
        hub: EventHub = info.context.request.app.state.events
        with _closed_as_errors():
            async with hub.watch(None) as watcher:
                if condition is not None:  # a bad filter: refused now, not at the first event
                    async with info.context.db.connect() as conn:
                        await models.matching_flow_runs(conn, condition, [])
                async for batch in watcher.batches():
                    runs = [e for e in batch if isinstance(e, RunEvent)]
                    if condition is not None:
                        async with info.context.db.connect() as conn:
                            ids = [e.flow_run_id for e in runs]
                            matching = await models.matching_flow_runs(conn, condition, ids)
                        runs = [e for e in runs if e.flow_run_id in matching]
                    for event in runs:
                        yield FlowRunEvent.of(event)


@contextlib.contextmanager
def _closed_as_errors() -> Iterator[None]:
    """A subscription the hub closed ends with a GraphQL error that says why."""
    try:
        yield
    except (SubscriberTooSlow, EventsInterrupted) as reason:
        raise GraphQLError(str(reason), extensions={"code": SUBSCRIPTION_CLOSED}) from None


@contextlib.asynccontextmanager
async def _watching(info: Info, flow_run_id: uuid.UUID) -> AsyncIterator[tuple[Watcher, RunEvent]]:
    """A watcher of the flow run, then its current state: nothing that commits in between
    is missed. A run that does not exist is bad input."""
    hub: EventHub = info.context.request.app.state.events
    with _closed_as_errors():
        async with hub.watch(flow_run_id) as watcher:
            async with info.context.db.connect() as conn:
                current = await models.read_current_event(conn, flow_run_id)
            if current is None:
                raise InputError(f"flow run {str(flow_run_id)!r} does not exist.")
            yield watcher, current


def _ends(batch: list[Event]) -> bool:
    """Whether the transaction ``batch`` came from ended the flow run."""
    return any(isinstance(event, RunEvent) and event.ends_flow_run for event in batch)
