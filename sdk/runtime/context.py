"""Where the running code is: the flow run (and task run) it belongs to, in context variables.

Threads of a task runner do not inherit context variables; the engine submits work with
``contextvars.copy_context().run`` so a task run knows its flow run.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sdk.client import Client
from sdk.exceptions import FlowRunCancelled
from sdk.results import ResultStorage
from sdk.runtime.futures import RunviewFuture
from sdk.runtime.task_runners import TaskRunner
from sdk.states import State


@dataclass
class MappedParent:
    """A mapped parent task run, finished when the flow run ends from its children's states."""

    task_run_id: str
    version: int
    children: list[RunviewFuture]


@dataclass
class FlowRunContext:
    client: Client
    flow: Any
    flow_run_id: uuid.UUID
    storage: ResultStorage
    task_runner: TaskRunner
    # Everything whose state decides the flow's final state when it returns None.
    tracked: list[State | RunviewFuture] = field(default_factory=list)
    mapped_parents: list[MappedParent] = field(default_factory=list)
    logs: Any = None  # the flow run's LogShipper
    batcher: Any = None  # the flow run's StateBatcher
    # Set once the server says the flow run is being cancelled: no new task runs start.
    cancelling: threading.Event = field(default_factory=threading.Event)
    _calls: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_slug(self, name: str) -> str:
        """``<name>-<n>``: n counts the calls of ``name`` in this flow run, from 1."""
        with self._lock:
            self._calls[name] += 1
            return f"{name}-{self._calls[name]}"

    def check_cancelled(self) -> None:
        """Raise ``FlowRunCancelled`` if the flow run is being cancelled."""
        if self.cancelling.is_set():
            raise FlowRunCancelled(f"flow run {self.flow_run_id} is being cancelled")

    def track(self, item: State | RunviewFuture) -> None:
        with self._lock:
            self.tracked.append(item)

    def states(self) -> list[State]:
        """The final states of everything tracked (waits for submitted task runs)."""
        return [item.wait() if isinstance(item, RunviewFuture) else item for item in self.tracked]


@dataclass(frozen=True)
class TaskRunContext:
    task_run_id: uuid.UUID
    task_slug: str
    map_index: int


FLOW_RUN: ContextVar[FlowRunContext | None] = ContextVar("runview_flow_run", default=None)
TASK_RUN: ContextVar[TaskRunContext | None] = ContextVar("runview_task_run", default=None)
