"""``TaskRunView``: one task run, its result, and a mapped parent's children."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from sdk import _loop, documents
from sdk.client import BaseClient, default_client
from sdk.exceptions import InvalidInput, NoResultLocation, NotFound, RunNotFinished
from sdk.results import ResultRef, aread_results
from sdk.states import TERMINAL, State
from sdk.views._common import (
    NOT_LOADED,
    Slot,
    execute,
    parse_time,
    parse_uuid,
    reduce_view,
)

_REF = {"location", "serializer"}

# Children per request when iterating a mapped parent.
PAGE_SIZE = 500


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
    _result: Slot = field(default_factory=Slot, compare=False)

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
            start_time=parse_time(row["start_time"]),
            end_time=parse_time(row["end_time"]),
            _client=client,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Its snapshot, without the client or a loaded result (see views._common).
        return reduce_view(self)

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
        run_id = parse_uuid(flow_run_id, "flow run")
        variables = {"flow_run_id": str(run_id), "task_slug": task_slug, "map_index": map_index}
        data = await execute(client, documents.TASK_RUN_BY_SLUG, variables)
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
        run_id = parse_uuid(task_run_id, "task run")
        row = (await execute(client, documents.TASK_RUN, {"id": str(run_id)}))["task_run_by_pk"]
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
            ResultNotTrusted: A pickle or cloudpickle result is under no trusted result root
                (``RUNVIEW_TRUSTED_RESULT_ROOTS``); nothing was read.
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
        rows = (await execute(self._client, documents.MAPPED_RESULTS, variables))["task_run"]
        # Only each child's state and result reference travel: a tenth of its whole state.
        refs = []
        for row in rows:
            result = row["result"]
            if row["state_type"] in TERMINAL and isinstance(result, dict) and _REF <= result.keys():
                # The common case, 10,000 times over: no State object, no label.
                refs.append(ResultRef(str(result["location"]), str(result["serializer"])))
                continue
            state = State.from_serialized(
                {"type": row["state_type"], "name": row["state"], "result": result}
            )
            refs.append(self._ref(state, f"{self._label}, child {row['map_index']},"))
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
        rows = (await execute(self._client, documents.MAPPED_CHILDREN, variables))["task_run"]
        return [self._from_row(row, self._client) for row in rows]
