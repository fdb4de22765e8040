"""``FlowRunView`` and ``TaskRunView``: inspect runs without writing queries.

Views are immutable snapshots made by ``from_*`` class methods; ``get_latest()`` returns a
new snapshot. A task run's result is loaded lazily, once (``NOT_LOADED`` tells "not loaded"
from a result that is ``None``). A ``FlowRunView`` caches the views of its finished task
runs, which never change again, across its ``get_latest()`` copies; unfinished ones are
always fetched anew.

Every method has an async twin named with an ``a`` (``afrom_task_slug``, ``aget_result``);
the plain ones run the same code on the SDK's loop and wait for it.

Example::

    task_run = TaskRunView.from_task_slug("foo-1", flow_run_id="...")
    task_run.get_result()  # "foobar!"
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from sdk import _loop, documents
from sdk.client import BaseClient, default_client
from sdk.documents import Document
from sdk.exceptions import InvalidInput, NoResultLocation, NotFound, RunNotFinished
from sdk.results import ResultRef, aread_results
from sdk.states import State

# Children per request when iterating a mapped parent.
PAGE_SIZE = 500


class _NotLoaded:
    def __repr__(self) -> str:
        return "NOT_LOADED"


NOT_LOADED: Any = _NotLoaded()


async def _execute(client: BaseClient, document: Document, variables: dict[str, Any]) -> Any:
    return await _loop.run_async(client._execute(document, variables))


def _uuid(value: Any, what: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(
            f"{value!r} is not a {what} id; expected a UUID such as"
            " '8e445d74-9ca6-425b-98e5-72754b7ea174'."
        ) from None


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


@dataclass
class _Slot:
    value: Any = NOT_LOADED


@dataclass(frozen=True, repr=False)
class TaskRunView:
    """A snapshot of one task run. Build it with ``from_task_slug`` or ``from_task_run_id``."""

    task_run_id: uuid.UUID
    task_id: uuid.UUID
    task_slug: str
    name: str
    state: State
    map_index: int
    flow_run_id: uuid.UUID
    mapped: bool
    version: int
    run_count: int
    start_time: dt.datetime | None
    end_time: dt.datetime | None
    _client: BaseClient = field(compare=False)
    _result: _Slot = field(default_factory=_Slot, compare=False)

    @classmethod
    def _from_row(cls, row: dict[str, Any], client: BaseClient) -> TaskRunView:
        task_run_id, flow_run_id = uuid.UUID(row["id"]), uuid.UUID(row["flow_run_id"])
        serialized = row["serialized_state"] or {"type": row["state_type"], "name": row["state"]}
        return cls(
            task_run_id=task_run_id,
            task_id=uuid.UUID(row["task_id"]),
            task_slug=row["task"]["slug"],
            name=row["name"],
            state=State.from_serialized(
                serialized, flow_run_id=flow_run_id, task_run_id=task_run_id
            ),
            map_index=row["map_index"],
            flow_run_id=flow_run_id,
            mapped=bool(row["task"]["mapped"]) and row["map_index"] == -1,
            version=row["version"],
            run_count=row["run_count"],
            start_time=_time(row["start_time"]),
            end_time=_time(row["end_time"]),
            _client=client,
        )

    def __repr__(self) -> str:
        loaded = "loaded" if self._result.value is not NOT_LOADED else "not loaded"
        return (
            f"TaskRunView(task_run_id={str(self.task_run_id)!r}, task_slug={self.task_slug!r},"
            f" map_index={self.map_index}, state={self.state.name}, result {loaded})"
        )

    @property
    def _label(self) -> str:
        index = f" (map_index {self.map_index})" if self.map_index >= 0 else ""
        return f"Task run {self.task_slug!r}{index} of flow run {str(self.flow_run_id)!r}"

    # Building views

    @classmethod
    async def afrom_task_slug(
        cls,
        task_slug: str,
        flow_run_id: uuid.UUID | str,
        map_index: int = -1,
        *,
        client: BaseClient | None = None,
    ) -> TaskRunView:
        """The task run of ``task_slug`` (``"<task name>-<n>"``) in a flow run.

        Raises:
            NotFound: No such flow run, or no such task run in it.
            InvalidInput: ``flow_run_id`` is not a UUID.
        """
        client = client or default_client()
        run_id = _uuid(flow_run_id, "flow run")
        variables = {"flow_run_id": str(run_id), "task_slug": task_slug, "map_index": map_index}
        data = await _execute(client, documents.TASK_RUN_BY_SLUG, variables)
        if data["flow_run_by_pk"] is None:
            raise NotFound(f"No flow run has the id {str(run_id)!r}.")
        if not data["task_run"]:
            index = f" with map_index {map_index}" if map_index != -1 else ""
            raise NotFound(f"Flow run {str(run_id)!r} has no task run {task_slug!r}{index}.")
        return cls._from_row(data["task_run"][0], client)

    @classmethod
    def from_task_slug(
        cls,
        task_slug: str,
        flow_run_id: uuid.UUID | str,
        map_index: int = -1,
        *,
        client: BaseClient | None = None,
    ) -> TaskRunView:
        """The task run of ``task_slug`` (``"<task name>-<n>"``) in a flow run.

        Raises:
            NotFound: No such flow run, or no such task run in it.
            InvalidInput: ``flow_run_id`` is not a UUID.
        """
        return _loop.run_sync(cls.afrom_task_slug(task_slug, flow_run_id, map_index, client=client))

    @classmethod
    async def afrom_task_run_id(
        cls, task_run_id: uuid.UUID | str, *, client: BaseClient | None = None
    ) -> TaskRunView:
        """The task run with this id. Raises ``NotFound`` or ``InvalidInput``."""
        client = client or default_client()
        run_id = _uuid(task_run_id, "task run")
        row = (await _execute(client, documents.TASK_RUN, {"id": str(run_id)}))["task_run_by_pk"]
        if row is None:
            raise NotFound(f"No task run has the id {str(run_id)!r}.")
        return cls._from_row(row, client)

    @classmethod
    def from_task_run_id(
        cls, task_run_id: uuid.UUID | str, *, client: BaseClient | None = None
    ) -> TaskRunView:
        """The task run with this id. Raises ``NotFound`` or ``InvalidInput``."""
        return _loop.run_sync(cls.afrom_task_run_id(task_run_id, client=client))

    async def aget_latest(self) -> TaskRunView:
        """A new snapshot; a finished task run cannot change, so it is returned as is."""
        if self.state.is_final():
            return self
        return await self.afrom_task_run_id(self.task_run_id, client=self._client)

    def get_latest(self) -> TaskRunView:
        """A new snapshot; a finished task run cannot change, so it is returned as is."""
        return _loop.run_sync(self.aget_latest())

    # Results

    async def aget_result(self) -> Any:
        """The task run's result, loaded from its location once.

        For a mapped parent: the children's results in map_index order, their locations
        fetched in one request and the results read concurrently.

        Raises:
            RunNotFinished: The task run (or a mapped child) has not finished.
            NoResultLocation: It finished without a result (it failed, for example).
            ResultNotFound, ResultUnreadable: The stored result cannot be read.
        """
        if self._result.value is NOT_LOADED:
            refs = await self._result_refs()
            values = await aread_results(refs)
            self._result.value = values if self.mapped else values[0]
        return self._result.value

    def get_result(self) -> Any:
        """The task run's result; see ``aget_result``."""
        return _loop.run_sync(self.aget_result())

    async def _result_refs(self) -> list[ResultRef]:
        if not self.mapped:
            return [self._ref(self.state, self._label)]
        variables = {"flow_run_id": str(self.flow_run_id), "task_id": str(self.task_id)}
        rows = (await _execute(self._client, documents.MAPPED_RESULTS, variables))["task_run"]
        refs = []
        for row in rows:
            state = State.from_serialized(
                row["serialized_state"] or {"type": row["state_type"], "name": row["state"]}
            )
            label = f"{self._label}, child {row['map_index']},"
            refs.append(self._ref(state, label))
        return refs

    @staticmethod
    def _ref(state: State, label: str) -> ResultRef:
        if not state.is_final():
            raise RunNotFinished(
                f"{label} is {state.name}, not finished; its result is not ready (get_latest()"
                " gives a newer snapshot)."
            )
        if state.result_ref is None:
            raise NoResultLocation(f"{label} finished {state.name} without a result location.")
        return state.result_ref

    # Mapped children

    async def aiter_mapped(self) -> AsyncIterator[TaskRunView]:
        """The children of a mapped parent, in map_index order, fetched a page at a time."""
        first = 0
        while True:
            page = await self._children(first)
            for child in page:
                yield child
            if len(page) < PAGE_SIZE:
                return
            first += PAGE_SIZE

    def iter_mapped(self) -> Iterator[TaskRunView]:
        """The children of a mapped parent, in map_index order, fetched a page at a time."""
        first = 0
        while True:
            page = _loop.run_sync(self._children(first))
            yield from page
            if len(page) < PAGE_SIZE:
                return
            first += PAGE_SIZE

    async def _children(self, first: int) -> list[TaskRunView]:
        if not self.mapped:
            raise InvalidInput(f"{self._label} is not a mapped parent; it has no children.")
        variables = {
            "flow_run_id": str(self.flow_run_id),
            "task_id": str(self.task_id),
            "first": first,
            "last": first + PAGE_SIZE - 1,
        }
        rows = (await _execute(self._client, documents.MAPPED_CHILDREN, variables))["task_run"]
        return [self._from_row(row, self._client) for row in rows]


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
    """A snapshot of one flow run. Build it with ``from_flow_run_id``."""

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
            scheduled_start_time=_time(row["scheduled_start_time"]),
            start_time=_time(row["start_time"]),
            end_time=_time(row["end_time"]),
            parent_task_run_id=uuid.UUID(parent) if parent else None,
            _client=client,
            _task_runs=cache or _TaskRunCache(),
        )

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
        run_id = _uuid(flow_run_id, "flow run")
        row = (await _execute(client, documents.FLOW_RUN, {"id": str(run_id)}))["flow_run_by_pk"]
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
        data = await _execute(self._client, documents.FLOW_RUN, {"id": str(self.flow_run_id)})
        if data["flow_run_by_pk"] is None:
            raise NotFound(f"Flow run {str(self.flow_run_id)!r} no longer exists.")
        return self._from_row(data["flow_run_by_pk"], self._client, self._task_runs)

    def get_latest(self) -> FlowRunView:
        """A new snapshot of the flow run, keeping the cache of finished task runs."""
        return _loop.run_sync(self.aget_latest())

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
            run_id = _uuid(task_run_id, "task run")
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
        rows = (await _execute(self._client, documents.TASK_RUNS, variables))["task_run"]
        fetched = [self._task_runs.add(TaskRunView._from_row(r, self._client)) for r in rows]
        views = {view.task_run_id: view for view in [*self._task_runs.by_id.values(), *fetched]}
        return sorted(views.values(), key=lambda view: (view.task_slug, view.map_index))

    def get_all_task_runs(self) -> list[TaskRunView]:
        """Every task run of this flow run; see ``aget_all_task_runs``."""
        return _loop.run_sync(self.aget_all_task_runs())

    async def aget_task_run_ids(self) -> list[uuid.UUID]:
        """The ids of every task run of this flow run."""
        variables = {"flow_run_id": str(self.flow_run_id)}
        rows = (await _execute(self._client, documents.TASK_RUN_IDS, variables))["task_run"]
        return [uuid.UUID(row["id"]) for row in rows]

    def get_task_run_ids(self) -> list[uuid.UUID]:
        """The ids of every task run of this flow run."""
        return _loop.run_sync(self.aget_task_run_ids())

    async def aget_logs(self) -> list[LogRecord]:
        """The flow run's log records (its task runs' too), oldest first."""
        variables = {"flow_run_id": str(self.flow_run_id)}
        rows = (await _execute(self._client, documents.LOGS, variables))["log"]
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
