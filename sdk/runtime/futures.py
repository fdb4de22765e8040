"""Futures of task runs: ``.result()`` gives data (re-raising a failure), ``.wait()`` gives
the State and never raises."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from sdk.states import State


class RunviewFuture:
    """The eventual State of a submitted task run."""

    def __init__(self, future: concurrent.futures.Future[State], task_slug: str, map_index: int):
        self._future = future
        self.task_slug = task_slug
        self.map_index = map_index

    def wait(self, timeout: float | None = None) -> State:
        """The task run's final State (blocks until it is known)."""
        return self._future.result(timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
        """The task run's data; its exception is raised if it failed."""
        return self.wait(timeout).result(raise_on_failure=raise_on_failure)

    def done(self) -> bool:
        return self._future.done()

    def __repr__(self) -> str:
        index = f"[{self.map_index}]" if self.map_index >= 0 else ""
        status = repr(self._future.result()) if self._future.done() else "running"
        return f"RunviewFuture({self.task_slug}{index}, {status})"


class RunviewFutureList(list[RunviewFuture]):
    """The futures of a mapped task's children, in map_index order."""

    def wait(self, timeout: float | None = None) -> list[State]:
        return [future.wait(timeout) for future in self]

    def result(self, timeout: float | None = None) -> list[Any]:
        return [future.result(timeout) for future in self]
