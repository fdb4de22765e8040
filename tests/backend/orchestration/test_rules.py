"""Each orchestration rule on its own, over (from, to) pairs, and the policies' order.

No database: a rule sees only a ``Proposal``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

import pytest

from backend.orchestration import rules
from backend.orchestration.rules import (
    FLOW_RUN_POLICY,
    TASK_RUN_POLICY,
    Proposal,
    Run,
    Status,
)
from backend.orchestration.states import DEFAULT_NAMES, TERMINAL, ResultRef, State, StateType

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
TYPES = list(StateType)
PAIRS = list(itertools.product(TYPES, TYPES))


def state(state_type: StateType, name: str | None = None, **kw: object) -> State:
    return State(type=state_type, name=name or DEFAULT_NAMES[state_type], timestamp=NOW, **kw)  # type: ignore[arg-type]


def proposal(
    current: StateType | State,
    proposed: StateType | State,
    *,
    version: int = 5,
    run_version: int = 5,
    **run: object,
) -> Proposal:
    current_state = current if isinstance(current, State) else state(current)
    proposed_state = proposed if isinstance(proposed, State) else state(proposed)
    snapshot = Run(id=uuid.uuid4(), state=current_state, version=run_version, **run)  # type: ignore[arg-type]
    return Proposal(run=snapshot, proposed=proposed_state, version=version, now=NOW)


def decide(rule: rules.Rule, p: Proposal) -> Proposal:
    if rule.applies(p):
        rule.apply(p)
    return p


@pytest.mark.parametrize(("current", "proposed"), PAIRS)
def test_stale_version_is_rejected_from_any_state_to_any(
    current: StateType, proposed: StateType
) -> None:
    stale = decide(rules.RejectStaleVersion(), proposal(current, proposed, version=4))
    assert stale.status is Status.REJECTED
    assert "version 4 is stale: the run is at version 5" in (stale.reason or "")
    fresh = decide(rules.RejectStaleVersion(), proposal(current, proposed, version=5))
    assert fresh.status is Status.ACCEPTED


@pytest.mark.parametrize(("current", "proposed"), PAIRS)
def test_terminal_states_are_final(current: StateType, proposed: StateType) -> None:
    p = decide(rules.TerminalStatesAreFinal(), proposal(current, proposed))
    if current in TERMINAL:
        assert p.status is Status.REJECTED
        assert "a terminal state" in (p.reason or "")
        assert p.in_force == p.run.state
    else:
        assert p.status is Status.ACCEPTED and p.in_force == p.proposed


@pytest.mark.parametrize(("current", "proposed"), PAIRS)
def test_cancelling_only_ends(current: StateType, proposed: StateType) -> None:
    p = decide(rules.CancellingOnlyEnds(), proposal(current, proposed))
    refused = current is StateType.CANCELLING and proposed not in (
        StateType.CANCELLED,
        StateType.CRASHED,
    )
    assert (p.status is Status.REJECTED) == refused


@pytest.mark.parametrize(("flow_run", "proposed"), PAIRS)
def test_task_runs_start_only_inside_running_flow_runs(
    flow_run: StateType, proposed: StateType
) -> None:
    p = proposal(StateType.PENDING, proposed, flow_run_state_type=flow_run)
    decide(rules.TaskRunsRunInsideRunningFlowRuns(), p)
    aborted = proposed is StateType.RUNNING and flow_run is not StateType.RUNNING
    assert (p.status is Status.ABORTED) == aborted
    if aborted:
        assert f"the flow run is {flow_run.value}, not RUNNING" in (p.reason or "")


@pytest.mark.parametrize("current", TYPES)
@pytest.mark.parametrize("proposed", TYPES)
def test_a_valid_cache_turns_running_into_cached(current: StateType, proposed: StateType) -> None:
    source, result = uuid.uuid4(), ResultRef("file:///r/1", "pickle")
    p = decide(rules.UseCachedResult(), proposal(current, proposed, cached=(source, result)))
    assert p.status is Status.ACCEPTED
    if proposed is StateType.RUNNING:
        assert (p.state.type, p.state.name, p.state.result) == (
            StateType.COMPLETED,
            "Cached",
            result,
        )
        assert str(source) in (p.state.message or "")
    else:
        assert p.state == p.proposed
    uncached = decide(rules.UseCachedResult(), proposal(current, proposed))
    assert uncached.state == uncached.proposed


@pytest.mark.parametrize("current", TYPES)
@pytest.mark.parametrize("run_count", [0, 1, 3])
def test_running_again_is_named_retrying(current: StateType, run_count: int) -> None:
    p = decide(rules.NameRetryAttempts(), proposal(current, StateType.RUNNING, run_count=run_count))
    assert p.state.name == ("Retrying" if run_count else "Running")
    assert p.state.type is StateType.RUNNING


@pytest.mark.parametrize(("current", "proposed"), PAIRS)
@pytest.mark.parametrize(
    ("run_count", "max_retries", "retried"),
    [(1, 2, True), (2, 2, True), (3, 2, False), (1, 0, False)],
)
def test_failing_with_retries_left_awaits_a_retry(
    current: StateType, proposed: StateType, run_count: int, max_retries: int, retried: bool
) -> None:
    p = proposal(
        current,
        state(proposed, message="boom") if proposed is StateType.FAILED else proposed,
        run_count=run_count,
        max_retries=max_retries,
        retry_delay_seconds=1.5,
    )
    decide(rules.RetryFailedTaskRuns(), p)
    assert p.status is Status.ACCEPTED
    if retried and current is StateType.RUNNING and proposed is StateType.FAILED:
        assert (p.state.type, p.state.name) == (StateType.SCHEDULED, "AwaitingRetry")
        assert p.state.scheduled_time == NOW + dt.timedelta(seconds=1.5)
        assert p.state.message == f"Retry {run_count} of {max_retries}: boom"
    else:
        assert p.state == p.proposed


@pytest.mark.parametrize(("current", "proposed"), PAIRS)
def test_an_ended_flow_run_ends_its_task_runs(current: StateType, proposed: StateType) -> None:
    p = decide(rules.EndedFlowRunsEndTheirTaskRuns(), proposal(current, proposed))
    assert p.status is Status.ACCEPTED and p.state == p.proposed
    if proposed is StateType.CANCELLED:
        assert p.effects == [rules.FinishTaskRuns("Cancelled", "Its flow run is Cancelled.")]
    elif proposed is StateType.CRASHED:
        assert p.effects == [rules.FinishTaskRuns("Crashed", "Its flow run is Crashed.")]
    elif proposed in (StateType.COMPLETED, StateType.FAILED):
        name = p.state.name
        message = f"Its flow run ended {name} before this task run did."
        assert p.effects == [rules.FinishTaskRuns("Crashed", message)]
    else:
        assert p.effects == []


def test_the_first_refusal_decides() -> None:
    # Stale and terminal at once: the version rule comes first, and says so.
    p = TASK_RUN_POLICY.decide(proposal(StateType.COMPLETED, StateType.RUNNING, version=1))
    assert p.status is Status.REJECTED and "stale" in (p.reason or "")
    # A cached result is not used for a task run whose flow run is not running.
    p = TASK_RUN_POLICY.decide(
        proposal(
            StateType.PENDING,
            StateType.RUNNING,
            flow_run_state_type=StateType.PAUSED,
            cached=(uuid.uuid4(), ResultRef("memory://x", "json")),
        )
    )
    assert p.status is Status.ABORTED and p.in_force.name == "Pending"


def test_a_task_run_through_its_retries() -> None:
    """Running, AwaitingRetry, Retrying, AwaitingRetry, Retrying, Failed: two retries."""
    current, version, run_count, names = state(StateType.PENDING), 1, 0, []
    for proposed in [StateType.RUNNING, StateType.FAILED] * 3:
        p = TASK_RUN_POLICY.decide(
            proposal(
                current,
                proposed,
                version=version,
                run_version=version,
                run_count=run_count,
                max_retries=2,
                flow_run_state_type=StateType.RUNNING,
            )
        )
        assert p.status is Status.ACCEPTED
        current, version = p.state, version + 1
        run_count += p.state.type is StateType.RUNNING
        names.append(p.state.name)
    assert names == [
        "Running",
        "AwaitingRetry",
        "Retrying",
        "AwaitingRetry",
        "Retrying",
        "Failed",
    ]


def test_flow_runs_have_no_task_rules() -> None:
    # A flow run may go RUNNING without a parent flow run, and FAILED stays Failed.
    p = FLOW_RUN_POLICY.decide(proposal(StateType.PENDING, StateType.RUNNING))
    assert p.status is Status.ACCEPTED and p.state.name == "Running"
    p = FLOW_RUN_POLICY.decide(proposal(StateType.RUNNING, StateType.FAILED, max_retries=3))
    assert p.state.name == "Failed"
