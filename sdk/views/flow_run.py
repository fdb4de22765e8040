"""``FlowRunView``: one flow run, its states, task runs and logs."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sdk import _loop, documents
from sdk.client import BaseClient, default_client
from sdk.exceptions import InvalidInput, NotFound
from sdk.states import State
from sdk.views._common import execute, parse_time, parse_uuid, reduce_view
from sdk.views.task_run import TaskRunView

if TYPE_CHECKING:  # the stream's imports (gql's WebSocket transport) load when it is used
    from sdk.subscriptions import FlowRunEvent


@dataclass(frozen=True)
class LogRecord:
    id: uuid.UUID
    flow_run_id: uuid.UUID
    task_run_id: uuid.UUID | None
    timestamp: dt.datetime
    level: int
    name: str
    message: str


class _TaskRunCache:
    """The finished task runs a FlowRunView has seen, shared by its get_latest() copies."""

    def __init__(self) -> None:
        self.by_id: dict[uuid.UUID, TaskRunView] = {}
        self.by_slug: dict[tuple[str, int], TaskRunView] = {}

    def add(self, view: TaskRunView) -> TaskRunView:
        if view.state.is_final():
            view = self.by_id.setdefault(view.task_run_id, view)
            self.by_slug[(view.task_slug, view.map_index)] = view
        return view


@dataclass(frozen=True, repr=False)
class FlowRunView:
    """A snapshot of one flow run. Build it with ``from_flow_run_id``.

    It pickles as its snapshot data and is loaded back with the default client, so a task
    can return one (``wait_for_flow_run`` does).
    """

    flow_run_id: uuid.UUID
    name: str
    flow_id: uuid.UUID
    flow_name: str
    parameters: dict[str, Any]
    context: dict[str, Any]
    labels: list[str]
    state: State
    states: tuple[State, ...]
    scheduled_start_time: dt.datetime | None
    start_time: dt.datetime | None
    end_time: dt.datetime | None
    parent_task_run_id: uuid.UUID | None
    _client: BaseClient = field(compare=False)
    _task_runs: _TaskRunCache = field(default_factory=_TaskRunCache, compare=False)

    @classmethod
    def _from_row(
        cls, row: dict[str, Any], client: BaseClient, cache: _TaskRunCache | None = None
    ) -> FlowRunView:
        run_id = uuid.UUID(row["id"])
        parent = row["parent_task_run_id"]
        return cls(
            flow_run_id=run_id,
            name=row["name"],
            flow_id=uuid.UUID(row["flow_id"]),
            flow_name=row["flow"]["name"],
            parameters=row["parameters"],
            context=row["context"],
            labels=row["labels"],
            state=State.from_serialized(
                row["serialized_state"] or {"type": row["state_type"], "name": row["state"]},
                flow_run_id=run_id,
            ),
            states=tuple(
                State.from_serialized(
                    s["serialized_state"]
                    or {"type": s["type"], "name": s["state"], "message": s["message"]},
                    flow_run_id=run_id,
                )
                for s in row["states"]
            ),
            scheduled_start_time=parse_time(row["scheduled_start_time"]),
            start_time=parse_time(row["start_time"]),
            end_time=parse_time(row["end_time"]),
            parent_task_run_id=uuid.UUID(parent) if parent else None,
            _client=client,
            _task_runs=cache or _TaskRunCache(),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Its snapshot, without the client or its cache of task runs (see views._common).
        return reduce_view(self)

    def __repr__(self) -> str:
        return (
            f"FlowRunView(flow_run_id={str(self.flow_run_id)!r}, name={self.name!r},"
            f" flow={self.flow_name!r}, state={self.state.name},"
            f" cached_task_runs={len(self._task_runs.by_id)})"
        )

    @classmethod
    async def afrom_flow_run_id(
        cls, flow_run_id: uuid.UUID | str, *, client: BaseClient | None = None
    ) -> FlowRunView:
        """The flow run with this id. Raises ``NotFound`` or ``InvalidInput``."""
        client = client or default_client()
        run_id = parse_uuid(flow_run_id, "flow run")
        row = (await execute(client, documents.FLOW_RUN, {"id": str(run_id)}))["flow_run_by_pk"]
        if row is None:
            raise NotFound(f"No flow run has the id {str(run_id)!r}.")
        return cls._from_row(row, client)

    @classmethod
    def from_flow_run_id(
        cls, flow_run_id: uuid.UUID | str, *, client: BaseClient | None = None
    ) -> FlowRunView:
        """The flow run with this id. Raises ``NotFound`` or ``InvalidInput``."""
        return _loop.run_sync(cls.afrom_flow_run_id(flow_run_id, client=client))

    async def aget_latest(self) -> FlowRunView:
        """A new snapshot of the flow run, keeping the cache of finished task runs."""
        data = await execute(self._client, documents.FLOW_RUN, {"id": str(self.flow_run_id)})
        if data["flow_run_by_pk"] is None:
            raise NotFound(f"Flow run {str(self.flow_run_id)!r} no longer exists.")
        return self._from_row(data["flow_run_by_pk"], self._client, self._task_runs)

    def get_latest(self) -> FlowRunView:
        """A new snapshot of the flow run, keeping the cache of finished task runs."""
        return _loop.run_sync(self.aget_latest())

    def watch(self) -> Iterator[FlowRunEvent]:
        """The flow run's state now, then every accepted state of it and its task runs as
        it commits, until the flow run ends (with the task runs that ended with it)."""
        from sdk.subscriptions import flow_run_events

        return flow_run_events(self._client, self.flow_run_id)

    def awatch(self) -> AsyncIterator[FlowRunEvent]:
        """``watch`` for async code: ``async for event in view.awatch()``."""
        from sdk.subscriptions import aflow_run_events

        return aflow_run_events(self._client, self.flow_run_id)

    async def aget_task_run(
        self,
        task_slug: str | None = None,
        task_run_id: uuid.UUID | str | None = None,
        map_index: int = -1,
    ) -> TaskRunView:
        """One task run of this flow run, by slug (and map_index) or by id.

        Raises:
            InvalidInput: Neither or both of ``task_slug`` and ``task_run_id`` were given.
            NotFound: The flow run has no such task run.
        """
        if (task_slug is None) == (task_run_id is None):
            raise InvalidInput(
                f"give exactly one of task_slug and task_run_id; got task_slug={task_slug!r},"
                f" task_run_id={task_run_id!r}."
            )
        if task_run_id is not None:
            run_id = parse_uuid(task_run_id, "task run")
            cached = self._task_runs.by_id.get(run_id)
            if cached is None:
                cached = await TaskRunView.afrom_task_run_id(run_id, client=self._client)
                if cached.flow_run_id != self.flow_run_id:
                    raise NotFound(
                        f"Task run {str(run_id)!r} belongs to flow run"
                        f" {str(cached.flow_run_id)!r}, not {str(self.flow_run_id)!r}."
                    )
        else:
            assert task_slug is not None
            cached = self._task_runs.by_slug.get((task_slug, map_index))
            if cached is None:
                cached = await TaskRunView.afrom_task_slug(
                    task_slug, self.flow_run_id, map_index, client=self._client
                )
        return self._task_runs.add(cached)

    def get_task_run(
        self,
        task_slug: str | None = None,
        task_run_id: uuid.UUID | str | None = None,
        map_index: int = -1,
    ) -> TaskRunView:
        """One task run of this flow run, by slug (and map_index) or by id."""
        return _loop.run_sync(self.aget_task_run(task_slug, task_run_id, map_index))

    async def aget_all_task_runs(self) -> list[TaskRunView]:
        """Every task run of this flow run, by slug then map_index. Finished ones already
        seen come from the cache; only the others are fetched."""
        known = [str(id) for id in self._task_runs.by_id]
        variables = {"flow_run_id": str(self.flow_run_id), "known": known}
        rows = (await execute(self._client, documents.TASK_RUNS, variables))["task_run"]
        fetched = [self._task_runs.add(TaskRunView._from_row(r, self._client)) for r in rows]
        views = {view.task_run_id: view for view in [*self._task_runs.by_id.values(), *fetched]}
        return sorted(views.values(), key=lambda view: (view.task_slug, view.map_index))

    def get_all_task_runs(self) -> list[TaskRunView]:
        """Every task run of this flow run; see ``aget_all_task_runs``."""
        return _loop.run_sync(self.aget_all_task_runs())

    async def aget_task_run_ids(self) -> list[uuid.UUID]:
        """The ids of every task run of this flow run."""
        variables = {"flow_run_id": str(self.flow_run_id)}
        rows = (await execute(self._client, documents.TASK_RUN_IDS, variables))["task_run"]
        return [uuid.UUID(row["id"]) for row in rows]

    def get_task_run_ids(self) -> list[uuid.UUID]:
        """The ids of every task run of this flow run."""
        return _loop.run_sync(self.aget_task_run_ids())

    async def aget_logs(self) -> list[LogRecord]:
        """The flow run's log records (its task runs' too), oldest first."""
        variables = {"flow_run_id": str(self.flow_run_id)}
        rows = (await execute(self._client, documents.LOGS, variables))["log"]
        return [
            LogRecord(
                id=uuid.UUID(row["id"]),
                flow_run_id=uuid.UUID(row["flow_run_id"]),
                task_run_id=uuid.UUID(row["task_run_id"]) if row["task_run_id"] else None,
                timestamp=dt.datetime.fromisoformat(row["timestamp"]),
                level=row["level"],
                name=row["name"],
                message=row["message"],
            )
            for row in rows
        ]

    def get_logs(self) -> list[LogRecord]:
        """The flow run's log records (its task runs' too), oldest first."""
        return _loop.run_sync(self.aget_logs())
