"""Futures of task runs: ``.result()`` gives data (re-raising a failure), ``.wait()`` gives
the State and never raises (a task run the runtime could not run at all is Crashed), and
``repr`` never raises either. In a coroutine, ``await future`` gives the data as
``.result()`` does, without blocking the event loop meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import uuid
from collections.abc import Generator
from typing import Any

from sdk.states import State


class RunviewFuture:
    """The eventual State of a submitted task run."""

    def __init__(
        self,
        future: concurrent.futures.Future[State],
        task_slug: str,
        map_index: int,
        flow_run_id: uuid.UUID | None = None,
    ):
        self._future = future
        self.task_slug = task_slug
        self.map_index = map_index
        self.flow_run_id = flow_run_id

    def wait(self, timeout: float | None = None) -> State:
        """The task run's final State (blocks until it is known); never raises but for
        ``timeout``: if running the task run itself failed (the server could not be reached,
        say), a Crashed State with the reason and the exception."""
        try:
            return self._future.result(timeout)
        except Exception as error:
            if not self._future.done():  # the wait timed out; the run goes on
                raise
            reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            return State(
                type="CRASHED",
                name="Crashed",
                message=f"The runtime could not run it: {reason}",
                exception=error,
                flow_run_id=self.flow_run_id,
            )

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
        """The task run's data; its exception is raised if it failed."""
        return self.wait(timeout).result(raise_on_failure=raise_on_failure)

    def done(self) -> bool:
        return self._future.done()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._result_async().__await__()

    async def _result_async(self) -> Any:
        # Shielded: an awaiter cancelled must not cancel a task run still queued.
        with contextlib.suppress(Exception):  # wait() turns it into a Crashed State
            await asyncio.shield(asyncio.wrap_future(self._future))
        return self.result()

    def __repr__(self) -> str:
        index = f"[{self.map_index}]" if self.map_index >= 0 else ""
        status = repr(self.wait()) if self._future.done() else "running"
        return f"RunviewFuture({self.task_slug}{index}, {status})"


class RunviewFutureList(list[RunviewFuture]):
    """The futures of a mapped task's children, in map_index order."""

    def wait(self, timeout: float | None = None) -> list[State]:
        return [future.wait(timeout) for future in self]

    def result(self, timeout: float | None = None) -> list[Any]:
        return [future.result(timeout) for future in self]

    def __await__(self) -> Generator[Any, None, list[Any]]:
        return self._result_async().__await__()

    async def _result_async(self) -> list[Any]:
        return [await future for future in self]
