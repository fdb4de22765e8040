"""``@task``: a function whose calls inside a flow are recorded task runs.

Inside a flow, calling a task runs it and returns its data (``return_state=True``: its
State); ``.submit()`` runs it on the flow's task runner and returns a future; ``.map()``
makes a mapped parent and one child per item. Outside any flow a task is a plain function.

An ``async def`` task called in an async flow gives a coroutine to await (``await
add_one(1)``; ``asyncio.gather`` runs several at once); called in a sync flow it runs to
completion and returns its data. Submitted and mapped, it runs on the task runner like any
task, each run on an event loop of its own.

Example::

    @task(retries=2, retry_delay_seconds=1)
    def add_one(x):
        return x + 1
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from sdk.results import ResultStorage
from sdk.runtime import engine
from sdk.runtime.context import FLOW_RUN, TASK_RUN, FlowRunContext
from sdk.runtime.futures import RunviewFuture, RunviewFutureList
from sdk.runtime.graph import GRAPH
from sdk.states import State


class unmapped:  # noqa: N801 - reads as a marker at the call site, like Prefect's
    """An argument of ``.map`` passed whole to every child rather than iterated over."""

    def __init__(self, value: Any) -> None:
        self.value = value


class Task:
    """A task; see the module docstring. Build it with ``@task``."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        retries: int = 0,
        retry_delay_seconds: float = 0.0,
        timeout_seconds: float | None = None,
        cache_key_fn: Callable[[FlowRunContext, dict[str, Any]], str | None] | None = None,
        cache_expiration: dt.timedelta | None = None,
        result_storage: ResultStorage | str | None = None,
        result_serializer: str | None = None,
        tags: Iterable[str] = (),
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.retries = retries
        self.retry_delay_seconds = retry_delay_seconds
        self.timeout_seconds = timeout_seconds
        self.cache_key_fn = cache_key_fn
        self.cache_expiration = cache_expiration
        if isinstance(result_storage, str):
            result_storage = ResultStorage(result_storage, serializer=result_serializer or "pickle")
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.tags = list(tags)
        self.isasync = inspect.iscoroutinefunction(fn)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"Task({self.name!r})"

    def __call__(self, *args: Any, return_state: bool = False, **kwargs: Any) -> Any:
        graph = GRAPH.get()
        if graph is not None:
            return graph.record(self, args, kwargs, mapped=False)
        ctx = FLOW_RUN.get()
        if ctx is None or TASK_RUN.get() is not None:
            return self.fn(*args, **kwargs)
        ctx.check_cancelled()
        slug = ctx.next_slug(self.name)  # numbered in call order, whenever it is awaited
        if self.isasync and _awaiting(ctx):
            return self._run_async(ctx, slug, args, kwargs, return_state)
        state = engine.run_task(ctx, self, slug, -1, args, kwargs)
        ctx.track(state)
        ctx.check_cancelled()
        return state if return_state else state.result()

    async def _run_async(
        self,
        ctx: FlowRunContext,
        slug: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        return_state: bool,
    ) -> Any:
        state = await engine.run_task_async(ctx, self, slug, -1, args, kwargs)
        ctx.track(state)
        ctx.check_cancelled()
        return state if return_state else state.result()

    def submit(self, *args: Any, **kwargs: Any) -> RunviewFuture:
        """Run on the flow's task runner; a future of the task run."""
        ctx = _inside_a_flow(self, "submit")
        ctx.check_cancelled()
        return engine.submit_task(ctx, self, args, kwargs)

    def map(self, *iterables: Any, **kwargs: Any) -> RunviewFutureList | list[Any]:
        """One child task run per item (positional and keyword iterables are zipped;
        ``unmapped(value)`` is passed whole). Inside a flow: the children's futures."""
        graph = GRAPH.get()
        if graph is not None:
            return graph.record(self, iterables, kwargs, mapped=True)  # type: ignore[return-value]
        # Mapping over an upstream task's output: wait for it to know how many children.
        iterables = tuple(_value(item) for item in iterables)
        kwargs = {key: _value(item) for key, item in kwargs.items()}
        calls = _calls(self.name, iterables, kwargs)
        ctx = FLOW_RUN.get()
        if ctx is None or TASK_RUN.get() is not None:
            return [self.fn(*a, **k) for a, k in calls]
        ctx.check_cancelled()
        return engine.map_task(ctx, self, calls)

    # Used by the engine

    def cache_key(self, ctx: FlowRunContext, args: Any, kwargs: Any) -> str | None:
        if self.cache_key_fn is None:
            return None
        parameters = inspect.signature(self.fn).bind(*args, **kwargs).arguments
        return self.cache_key_fn(ctx, dict(parameters))

    def cache_details(self) -> dict[str, Any]:
        if self.cache_key_fn is None or self.cache_expiration is None:
            return {}
        return {"cache_expiration": (dt.datetime.now(dt.UTC) + self.cache_expiration).isoformat()}

    def storage(self, ctx: FlowRunContext) -> ResultStorage:
        if self.result_storage is not None:
            return self.result_storage
        if self.result_serializer is not None:
            return ResultStorage(ctx.storage.template, serializer=self.result_serializer)
        return ctx.storage


def _value(item: Any) -> Any:
    return engine.resolve(item) if isinstance(item, RunviewFuture | State) else item


def _awaiting(ctx: FlowRunContext) -> bool:
    """Whether a call of an async task here is awaited: in an async flow's own thread
    (its event loop). Elsewhere (a sync flow, a thread the flow started) nothing could
    await it, so it runs to completion."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return bool(ctx.flow.isasync)


def _inside_a_flow(task: Task, what: str) -> FlowRunContext:
    ctx = FLOW_RUN.get()
    if ctx is None:
        raise RuntimeError(f"{task.name}.{what}() runs inside a flow; call {task.name}() instead.")
    return ctx


def _calls(
    name: str, iterables: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    mapped = {k: list(v) for k, v in kwargs.items() if not isinstance(v, unmapped)}
    fixed = {k: v.value for k, v in kwargs.items() if isinstance(v, unmapped)}
    positional = [None if isinstance(a, unmapped) else list(a) for a in iterables]
    lengths = {len(v) for v in [*mapped.values(), *(p for p in positional if p is not None)]}
    if len(lengths) > 1:
        raise ValueError(f"{name}.map() got iterables of different lengths {sorted(lengths)}.")
    count = lengths.pop() if lengths else 0
    return [
        (
            tuple(
                a.value if isinstance(a, unmapped) else p[i]  # type: ignore[index]
                for a, p in zip(iterables, positional, strict=True)
            ),
            {**fixed, **{k: v[i] for k, v in mapped.items()}},
        )
        for i in range(count)
    ]


def task(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Make a function a task: ``@task`` or ``@task(retries=2, ...)``."""
    if fn is None:
        return lambda f: Task(f, **options)
    return Task(fn, **options)


__all__ = ["Task", "task", "unmapped"]
