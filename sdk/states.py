"""``State``: what a run is in, as the SDK hands it out.

A State carries its type (which the server's rules reason about), its name (which people
read: Running and Retrying are both RUNNING), a message, and, for a finished run, where its
result is. States the SDK returns for runs carry ``flow_run_id`` (and ``task_run_id``).

The constructors ``Completed``, ``Failed``, ``Cancelled`` and ``TimedOut`` are for a flow
that decides its own final state by returning one::

    @flow
    def nightly():
        if not new_files():
            return Cancelled("nothing arrived today")
        load()

They are the final states a run can mean to end in. The others of the state table are not
offered: Scheduled, Late, AwaitingRetry, Pending, Running, Retrying, Paused and Cancelling
are not final (a run returning one would not be over); Crashed says the process running
the run died, which the run itself cannot report by returning; Cached is the server's
decision to reuse an earlier result.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sdk.exceptions import NoResultLocation, RunCancelled, RunFailed, RunNotFinished
from sdk.results import ResultRef, read_result

TERMINAL = frozenset({"COMPLETED", "CANCELLED", "FAILED", "CRASHED"})


class _NotLoaded:
    def __repr__(self) -> str:
        return "NOT_LOADED"

    def __reduce__(self) -> str:
        # Unpickled as the one sentinel, so ``is NOT_LOADED`` still holds in a pickled
        # State (a FlowRunView returned by a task is written to result storage).
        return "NOT_LOADED"


NOT_LOADED: Any = _NotLoaded()


@dataclass(frozen=True)
class State:
    type: str
    name: str
    message: str | None = None
    timestamp: dt.datetime | None = None
    result_ref: ResultRef | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
    # In-memory companions of a state the runtime produced: the value a run returned (so
    # result() needs no storage round trip) and the exception a failed run raised.
    data: Any = field(default=NOT_LOADED, repr=False, compare=False)
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_serialized(
        cls,
        data: Mapping[str, Any],
        *,
        flow_run_id: uuid.UUID | None = None,
        task_run_id: uuid.UUID | None = None,
    ) -> State:
        """Read the serialized form the server stores (``{type, name, message, ...}``)."""
        result = data.get("result")
        timestamp = data.get("timestamp")
        return cls(
            type=data["type"],
            name=data.get("name") or data["type"].title(),
            message=data.get("message"),
            timestamp=dt.datetime.fromisoformat(timestamp) if timestamp else None,
            result_ref=ResultRef(result["location"], result["serializer"]) if result else None,
            details=dict(data.get("details") or {}),
            flow_run_id=flow_run_id,
            task_run_id=task_run_id,
        )

    def is_final(self) -> bool:
        return self.type in TERMINAL

    def is_completed(self) -> bool:
        return self.type == "COMPLETED"

    def is_failed(self) -> bool:
        return self.type == "FAILED"

    def is_cancelled(self) -> bool:
        return self.type == "CANCELLED"

    def is_crashed(self) -> bool:
        return self.type == "CRASHED"

    def is_running(self) -> bool:
        return self.type == "RUNNING"

    def is_scheduled(self) -> bool:
        return self.type == "SCHEDULED"

    def is_pending(self) -> bool:
        return self.type == "PENDING"

    def is_paused(self) -> bool:
        return self.type == "PAUSED"

    def result(self, raise_on_failure: bool = True) -> Any:
        """The data of a finished run: in memory if this process ran it, else loaded from the
        user's storage.

        Args:
            raise_on_failure: For a Failed or Crashed run, raise its exception (or
                ``RunFailed``), and for a Cancelled one ``RunCancelled``, rather than return it.

        Raises:
            RunNotFinished: The run is not finished.
            NoResultLocation: It finished without a result.
        """
        if self.type in ("FAILED", "CRASHED"):
            error = self.exception or RunFailed(
                f"The run ended {self.name}: {self.message or 'no message'}.", self
            )
            if raise_on_failure:
                raise error
            return error
        if self.is_cancelled():
            cancelled = RunCancelled(
                f"The run was cancelled: {self.message or 'no message'}.", self
            )
            if raise_on_failure:
                raise cancelled
            return cancelled
        if self.data is not NOT_LOADED:
            return self.data
        if not self.is_final():
            raise RunNotFinished(f"The run is {self.name}; it has no result until it finishes.")
        if self.result_ref is None:
            raise NoResultLocation(f"The run finished {self.name} without a result location.")
        return read_result(self.result_ref)

    def __repr__(self) -> str:
        message = f", message={self.message!r}" if self.message else ""
        return f"{self.name}(type={self.type}{message})"


def Completed(message: str | None = None, data: Any = NOT_LOADED) -> State:  # noqa: N802
    """A Completed state, for a flow that decides its own final state.

    Args:
        message: Why, as people will read it on the run.
        data: What ``result()`` of the returned state gives in this process (it is not
            written to result storage).

    Example::

        @flow
        def check():
            return Completed("all 12 files present")
    """
    return State(type="COMPLETED", name="Completed", message=message, data=data)


def Failed(message: str | None = None) -> State:  # noqa: N802
    """A Failed state, for a flow that decides it failed without raising.

    Example::

        @flow
        def check():
            if missing_files():
                return Failed("3 of 12 files are missing")
    """
    return State(type="FAILED", name="Failed", message=message)


def Cancelled(message: str | None = None) -> State:  # noqa: N802
    """A Cancelled state, for a flow that decides there is nothing to do.

    Example::

        @flow
        def nightly():
            return Cancelled("nothing arrived today")
    """
    return State(type="CANCELLED", name="Cancelled", message=message)


def TimedOut(message: str | None = None) -> State:  # noqa: N802
    """A TimedOut state (a kind of Failed), for a flow that enforces a deadline of its own.

    Example::

        @flow
        def wait_for_upload():
            if not poll_until(deadline):
                return TimedOut("no upload by 06:00")
    """
    return State(type="FAILED", name="TimedOut", message=message)
