"""``@flow`` and ``Flow``: functions (or recorded graphs) whose runs are recorded flow runs.

Calling a flow runs it and returns its data (``return_state=True``: its final State). Its
final state is decided this way: an exception fails it; returning None lets its task
runs and nested flow runs decide (any cancelled: Cancelled; else any failed: Failed; else
Completed); a returned State is used as is; any other value completes it. A flow called
inside another is a nested flow run, linked to a task run of its parent.

An ``async def`` flow works as in Prefect 3: calling it gives a coroutine; await it in
another async flow (a nested flow run), or run it with ``asyncio.run(my_flow())``. In it,
await its async tasks; ``.submit()`` and ``.map()`` give futures as in a sync flow, and
``await future`` gives the data.

Example::

    @flow
    def my_flow():
        return add_one(1)  # 2

    with Flow("example-mapped") as graph_flow:   # the graph style: calls are recorded
        inc.map([0, 1, 2, 3, 4, 5])
    graph_flow.run()                              # the flow's final State
"""

from __future__ import annotations

import functools
import inspect
import uuid
from collections.abc import Callable, Iterable
from contextvars import Token
from typing import Any

from sdk import documents
from sdk.client import Client, default_client
from sdk.results import ResultStorage
from sdk.runtime import flow_engine
from sdk.runtime.graph import GRAPH, Graph, Parameter
from sdk.runtime.task_runners import TaskRunner, ThreadPoolTaskRunner
from sdk.states import State

__all__ = ["Flow", "Parameter", "flow"]


class Flow:
    """A flow; see the module docstring. Build it with ``@flow``, or ``Flow("name")`` as a
    context manager that records a graph of task calls."""

    def __init__(
        self,
        fn: Callable[..., Any] | str,
        *,
        name: str | None = None,
        result_storage: ResultStorage | str | None = None,
        result_serializer: str = "pickle",
        task_runner: TaskRunner | None = None,
        timeout_seconds: float | None = None,
        client: Client | None = None,
    ) -> None:
        self.graph: Graph | None = None
        if isinstance(fn, str):
            self.graph = Graph()
            name, fn = fn, self.graph.run
        self.fn = fn
        self.name = name or fn.__name__
        self._recording: Token[Graph | None] | None = None
        if isinstance(result_storage, str):
            result_storage = ResultStorage(result_storage, serializer=result_serializer)
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.task_runner = task_runner or ThreadPoolTaskRunner()
        self.timeout_seconds = timeout_seconds
        self.client = client
        self.isasync = inspect.iscoroutinefunction(fn)
        if self.graph is None:
            functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"Flow({self.name!r})"

    def __call__(self, *args: Any, return_state: bool = False, **kwargs: Any) -> Any:
        if self.isasync:  # a coroutine, to await or to asyncio.run
            return flow_engine.run_flow_async(self, args, kwargs, return_state)
        return flow_engine.run_flow(self, args, kwargs, return_state)

    # The graph style

    def __enter__(self) -> Flow:
        if self.graph is None:
            raise TypeError(f"{self!r} wraps a function; only Flow('name') records a graph.")
        self._recording = GRAPH.set(self.graph)
        return self

    def __exit__(self, *_: object) -> None:
        assert self._recording is not None
        GRAPH.reset(self._recording)
        self._recording = None

    def run(self, parameters: dict[str, Any] | None = None) -> State:
        """Run the flow; its final State (never raises for a failed run)."""
        state: State = flow_engine.run_flow(self, (), dict(parameters or {}), return_state=True)
        return state

    def register(
        self,
        entrypoint: str | None = None,
        *,
        labels: Iterable[str] | None = None,
        source_hash: str | None = None,
    ) -> uuid.UUID:
        """Record the flow (and, for a graph, its tasks) in the backend; the flow's id.

        Registering again with nothing changed changes nothing; a new entrypoint, labels,
        source hash or task list bumps the flow's version.

        Args:
            entrypoint: Where an agent finds the flow, ``path/to/file.py:name`` or
                ``package.module:name``. Default: found from where the flow is defined (a
                graph flow: the variable that holds it in the module calling ``register``).
            labels: Labels of the flow's runs created without any; an agent claims a run
                only if it has all of the run's labels. Default: keep those registered.
            source_hash: A hash of the code registered (``runview register`` sends the
                sha256 of the flow's file).
        """
        client = self.client or default_client()
        tasks = [
            {"slug": node.slug, "mapped": node.mapped}
            for node in (self.graph.nodes if self.graph else [])
        ]
        if entrypoint is None:
            entrypoint = self.entrypoint(inspect.stack()[1].frame.f_globals)
        flow_input = {
            "name": self.name,
            "tasks": tasks,
            "entrypoint": entrypoint,
            "labels": None if labels is None else list(labels),
            "source_hash": source_hash,
        }
        answer = client.execute(documents.CREATE_FLOW, {"input": flow_input})
        return uuid.UUID(answer["create_flow"]["id"])

    def entrypoint(self, namespace: dict[str, Any] | None = None) -> str | None:
        """``path/to/file.py:name`` for this flow, if it can be found."""
        if self.graph is None:
            path = inspect.getsourcefile(self.fn)
            return f"{path}:{self.fn.__name__}" if path else None
        namespace = namespace or {}
        path = namespace.get("__file__")
        for name, value in namespace.items():
            if value is self and path:
                return f"{path}:{name}"
        return None


def flow(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Make a function a flow: ``@flow`` or ``@flow(name="etl", ...)``."""
    if fn is None:
        return lambda f: Flow(f, **options)
    return Flow(fn, **options)
