"""Calling user code for the engine: sync or async, with a timeout, from any thread.

``call`` runs a flow's or task's function to completion from sync code (an async one on an
event loop of its own); ``call_async`` awaits one; ``in_thread`` runs one of the engine's
blocking steps off the event loop and sees it through even if the awaiting task is
cancelled. ``Outcome`` is what the code gave: a value, or what it raised.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from sdk.exceptions import FlowRunCancelled


class TaskTimedOut(TimeoutError):
    """A task run ran longer than its ``timeout_seconds``."""


T = TypeVar("T")


@dataclass
class Outcome:
    """What calling user code gave: its value, or what it raised."""

    value: Any = None
    error: BaseException | None = None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value

    @property
    def interrupt(self) -> BaseException | None:
        """What stopped the code, if it was stopped (KeyboardInterrupt, SystemExit, a
        cancelled coroutine) rather than failed: the run is recorded Crashed and the stop
        raised on."""
        if self.error is None or isinstance(self.error, Exception | FlowRunCancelled):
            return None
        return self.error


def call(fn: Callable[..., Any], args: Any, kwargs: Any, timeout: float | None) -> Any:
    """Call ``fn``; with a timeout it runs in a thread that is abandoned if it overruns
    (Python cannot stop a thread; the run is recorded TimedOut and the engine moves on).
    An async ``fn`` runs to completion, cancelled if it overruns."""
    if inspect.iscoroutinefunction(fn):
        return run_coroutine(call_async(fn, args, kwargs, timeout))
    if timeout is None:
        return fn(*args, **kwargs)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as error:  # handed to the calling thread
            outcome["error"] = error

    thread = threading.Thread(target=contextvars.copy_context().run, args=(target,), daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TaskTimedOut(f"timed out after {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


async def call_async(fn: Callable[..., Any], args: Any, kwargs: Any, timeout: float | None) -> Any:
    """Await async ``fn``; past ``timeout`` it is cancelled and ``TaskTimedOut`` raised."""
    if timeout is None:
        return await fn(*args, **kwargs)
    scope = asyncio.timeout(timeout)
    try:
        async with scope:
            return await fn(*args, **kwargs)
    except TimeoutError:
        if scope.expired():  # ours, not a TimeoutError the code raised itself
            raise TaskTimedOut(f"timed out after {timeout:g} s") from None
        raise


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion from sync code: on a new event loop in this thread,
    or in a thread of its own if this one already runs a loop (loops do not nest). The
    context variables go with it."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="runview-async") as pool:
        work = contextvars.copy_context().run
        return pool.submit(work, asyncio.run, coroutine).result()


async def in_thread(fn: Callable[..., T], *args: Any) -> tuple[T, BaseException | None]:
    """``fn(*args)`` in a worker thread, awaited to its end even if the awaiting task is
    cancelled meanwhile: a step of the engine cannot stop half-way (a run created but never
    started, threads started but never stopped). Its value, and the cancel if one came,
    which the caller raises once it has ended its run."""
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    cancelled: BaseException | None = None
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError as error:
            cancelled = error
    return future.result(), cancelled
