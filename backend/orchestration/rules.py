"""The orchestration rules: one class per rule, each guarding one invariant.

A rule looks at a ``Proposal`` (the run as read under its lock, the state proposed, the time)
and may let it pass, replace the state that will be written (AwaitingRetry instead of Failed,
Cached instead of Running), REJECT it (nothing changes; the caller is told the state in force)
or ABORT it (the caller should stop working on this run). A rule applies only when the run's
current state type is in ``FROM_STATES`` and the state about to be written is in
``TO_STATES``; policies apply rules in a fixed order and stop at the first refusal.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from backend.orchestration.states import TERMINAL, ResultRef, State, StateType

ALL = frozenset(StateType)


class Status(StrEnum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    ABORTED = "ABORTED"


@dataclass(frozen=True)
class Run:
    """What the rules know of a run, read while it is locked."""

    id: uuid.UUID
    state: State
    version: int
    run_count: int = 0
    max_retries: int = 0
    retry_delay_seconds: float = 0.0
    # Task runs only: the state type of their flow run, and the result of an unexpired
    # Completed run with the same cache key (with that run's id), if there is one.
    flow_run_state_type: StateType | None = None
    cached: tuple[uuid.UUID, ResultRef] | None = None


@dataclass(frozen=True)
class FinishTaskRuns:
    """Effect: put the flow run's unfinished task runs into the state ``name``."""

    name: str
    message: str


@dataclass
class Proposal:
    run: Run
    proposed: State
    version: int | None  # None: the server's own proposal
    now: dt.datetime
    status: Status = Status.ACCEPTED
    reason: str | None = None
    state: State = field(init=False)
    # What must happen besides writing the state, if it is accepted (rules cannot touch the
    # database; the one door carries these out in the same transaction).
    effects: list[FinishTaskRuns] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = self.proposed

    def reject(self, reason: str) -> None:
        self.status, self.reason = Status.REJECTED, reason

    def abort(self, reason: str) -> None:
        self.status, self.reason = Status.ABORTED, reason

    def replace(self, state: State, reason: str) -> None:
        self.state, self.reason = state, reason

    @property
    def in_force(self) -> State:
        """The state the run is in once this proposal has been decided."""
        return self.state if self.status is Status.ACCEPTED else self.run.state


class Rule:
    FROM_STATES: ClassVar[frozenset[StateType]] = ALL
    TO_STATES: ClassVar[frozenset[StateType]] = ALL

    def applies(self, proposal: Proposal) -> bool:
        return proposal.run.state.type in self.FROM_STATES and proposal.state.type in self.TO_STATES

    def apply(self, proposal: Proposal) -> None:
        raise NotImplementedError


class RejectStaleVersion(Rule):
    """Optimistic concurrency: a proposal made from an old reading of the run is refused.

    Guards against lost updates and double runs: of two workers that both read version 3
    and propose RUNNING, only the first is accepted; the second sees version 4. The server's
    own proposals (Late, Crashed, claims, cascades) have no version: they are judged against
    the state in force, read under the lock.
    """

    def apply(self, proposal: Proposal) -> None:
        if proposal.version is not None and proposal.version != proposal.run.version:
            proposal.reject(
                f"version {proposal.version} is stale: the run is at version"
                f" {proposal.run.version} ({proposal.run.state.name})."
            )


class TerminalStatesAreFinal(Rule):
    """A Completed, Failed, Cancelled or Crashed run never changes again, so its result and
    its end time are trustworthy."""

    FROM_STATES = TERMINAL

    def apply(self, proposal: Proposal) -> None:
        proposal.reject(
            f"the run is {proposal.run.state.name}, a terminal state; it cannot become"
            f" {proposal.proposed.name}."
        )


class CancellingOnlyEnds(Rule):
    """A run being cancelled may only end (Cancelled, or Crashed if its infrastructure died):
    a worker that missed the cancellation must not carry on running it."""

    FROM_STATES = frozenset({StateType.CANCELLING})
    TO_STATES = ALL - {StateType.CANCELLED, StateType.CRASHED}

    def apply(self, proposal: Proposal) -> None:
        proposal.reject(
            f"the run is already Cancelling; it can only become Cancelled, not"
            f" {proposal.proposed.name}."
        )


class TaskRunsRunInsideRunningFlowRuns(Rule):
    """A task run may start only while its flow run is RUNNING: no task work for a flow run
    that is paused, cancelling or over."""

    TO_STATES = frozenset({StateType.RUNNING})

    def apply(self, proposal: Proposal) -> None:
        flow_state = proposal.run.flow_run_state_type
        if flow_state is not StateType.RUNNING:
            proposal.abort(
                f"the flow run is {flow_state.value if flow_state else 'unknown'}, not RUNNING;"
                " its task runs cannot start."
            )


class UseCachedResult(Rule):
    """A task run whose cache key matches an unexpired Completed run does not run again: it
    becomes Cached, carrying that run's result reference."""

    TO_STATES = frozenset({StateType.RUNNING})

    def apply(self, proposal: Proposal) -> None:
        if proposal.run.cached is None:
            return
        source, result = proposal.run.cached
        cached = State(
            type=StateType.COMPLETED,
            name="Cached",
            timestamp=proposal.now,
            message=f"Reused the result of task run {source}.",
            result=result,
            details={"cached_from": str(source)},
        )
        proposal.replace(cached, f"a cached result from task run {source} is still valid.")


class NameRetryAttempts(Rule):
    """After a failed attempt, running again is named Retrying, so the history shows which
    attempts were retries."""

    TO_STATES = frozenset({StateType.RUNNING})

    def apply(self, proposal: Proposal) -> None:
        if proposal.run.run_count > 0 and proposal.state.name == "Running":
            proposal.replace(proposal.state.renamed("Retrying"), "this is a retry.")


class RetryFailedTaskRuns(Rule):
    """A task run that fails with retries left is not Failed: it waits (AwaitingRetry) for
    its retry delay and runs again. run_count counts the attempts made so far."""

    FROM_STATES = frozenset({StateType.RUNNING})
    TO_STATES = frozenset({StateType.FAILED})

    def apply(self, proposal: Proposal) -> None:
        run = proposal.run
        if run.run_count > run.max_retries:
            return
        when = proposal.now + dt.timedelta(seconds=run.retry_delay_seconds)
        message = proposal.state.message or proposal.state.name
        retry = State(
            type=StateType.SCHEDULED,
            name="AwaitingRetry",
            timestamp=proposal.now,
            message=f"Retry {run.run_count} of {run.max_retries}: {message}",
            details=dict(proposal.state.details),
            scheduled_time=when,
        )
        proposal.replace(
            retry, f"attempt {run.run_count} failed with {run.max_retries} retries allowed."
        )


class EndedFlowRunsEndTheirTaskRuns(Rule):
    """A flow run that ends takes its unfinished task runs with it, so no task run is left
    looking alive in a flow run that is over: Cancelled ones are Cancelled, the others
    Crashed (a runtime cut off from the server mid-task, say, ends its flow run Failed once
    it is back, but could not end the task run it was running)."""

    TO_STATES = TERMINAL

    def apply(self, proposal: Proposal) -> None:
        name = proposal.state.name
        if proposal.state.type in (StateType.CANCELLED, StateType.CRASHED):
            message = f"Its flow run is {name}."
        else:
            message = f"Its flow run ended {name} before this task run did."
        proposal.effects.append(
            FinishTaskRuns("Cancelled" if name == "Cancelled" else "Crashed", message)
        )


@dataclass(frozen=True)
class Policy:
    """Rules applied in order; the first that refuses decides."""

    rules: tuple[Rule, ...]

    def decide(self, proposal: Proposal) -> Proposal:
        for rule in self.rules:
            if rule.applies(proposal):
                rule.apply(proposal)
                if proposal.status is not Status.ACCEPTED:
                    break
        return proposal


FLOW_RUN_POLICY = Policy(
    (
        RejectStaleVersion(),
        TerminalStatesAreFinal(),
        CancellingOnlyEnds(),
        EndedFlowRunsEndTheirTaskRuns(),
    )
)

TASK_RUN_POLICY = Policy(
    (
        RejectStaleVersion(),
        TerminalStatesAreFinal(),
        CancellingOnlyEnds(),
        TaskRunsRunInsideRunningFlowRuns(),
        UseCachedResult(),
        NameRetryAttempts(),
        RetryFailedTaskRuns(),
    )
)
