"""Task runners: where submitted and mapped task runs execute.

The interface is small so that another executor (a Dask cluster, say) can implement it:
``start`` before the flow run, ``submit`` a callable, ``shutdown`` after, waiting for what is
in flight. Each flow run uses its own copy (``duplicate``), so nested flows do not share
workers with their parents.
"""

from __future__ import annotations

import concurrent.futures
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any


class TaskRunner(ABC):
    @abstractmethod
    def duplicate(self) -> TaskRunner:
        """A fresh, unstarted runner configured like this one."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]: ...

    @abstractmethod
    def shutdown(self, wait: bool = True) -> None: ...


class ThreadPoolTaskRunner(TaskRunner):
    """Runs task runs on a pool of threads (the default).

    Args:
        max_workers: Threads in the pool; default 32. Task runs mostly wait (on storage, on
            the server, on other systems), so threads pay off beyond the core count; and
            the more run at once, the more state proposals share a request.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or 32
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def duplicate(self) -> ThreadPoolTaskRunner:
        return ThreadPoolTaskRunner(self.max_workers)

    def start(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self.max_workers, thread_name_prefix="runview-task"
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        if self._pool is None:
            raise RuntimeError("the task runner is not started; submit runs inside a flow")
        return self._pool.submit(fn, *args)

    def shutdown(self, wait: bool = True) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait)
            self._pool = None

    def __repr__(self) -> str:
        return f"ThreadPoolTaskRunner(max_workers={self.max_workers})"
