"""``@flow``: a function whose calls are recorded flow runs.

Calling a flow runs it and returns its data (``return_state=True``: its final State). Its
final state follows the seed's rules: an exception fails it; returning None lets its task
runs and nested flow runs decide (any cancelled: Cancelled; else any failed: Failed; else
Completed); a returned State is used as is; any other value completes it. A flow called
inside another is a nested flow run, linked to a task run of its parent.

Example::

    @flow
    def my_flow():
        return add_one(1)  # 2
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sdk.client import Client
from sdk.results import ResultStorage
from sdk.runtime import engine
from sdk.runtime.task_runners import TaskRunner, ThreadPoolTaskRunner


class Flow:
    """A flow; see the module docstring. Build it with ``@flow``."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        result_storage: ResultStorage | str | None = None,
        result_serializer: str = "pickle",
        task_runner: TaskRunner | None = None,
        timeout_seconds: float | None = None,
        client: Client | None = None,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        if isinstance(result_storage, str):
            result_storage = ResultStorage(result_storage, serializer=result_serializer)
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.task_runner = task_runner or ThreadPoolTaskRunner()
        self.timeout_seconds = timeout_seconds
        self.client = client
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"Flow({self.name!r})"

    def __call__(self, *args: Any, return_state: bool = False, **kwargs: Any) -> Any:
        return engine.run_flow(self, args, kwargs, return_state)


def flow(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Make a function a flow: ``@flow`` or ``@flow(name="etl", ...)``."""
    if fn is None:
        return lambda f: Flow(f, **options)
    return Flow(fn, **options)
