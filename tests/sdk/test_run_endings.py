"""Every run ends: a task that returns a State ends in it, a future's wait() always gives a
State, and every way out of a flow (an interrupt, a failure while finishing) restores the
context, stops the flow's threads and records a final state."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from sdk import Cancelled, Completed, Failed, FlowRunView, documents
from sdk.exceptions import ClientError
from sdk.flows import flow as _flow
from sdk.runtime import engine, flow_engine
from sdk.runtime.context import FLOW_RUN
from sdk.tasks import task
from tests.sdk.conftest import CountingClient


@pytest.fixture
def flow(client: CountingClient, tmp_path: Path) -> Any:
    results = str(tmp_path / "results" / "{flow_run_id}" / "{task_run_id}")
    return lambda fn: _flow(fn, client=client, result_storage=results)


def newest_run(client: CountingClient) -> dict[str, Any]:
    rows = client.execute(documents.FLOW_RUN_ROWS, {"where": {}, "limit": 1})["flow_run"]
    return dict(rows[0])


def runtime_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("runview-")]


@task
def decides(what: str) -> Any:
    if what == "cancel":
        return Cancelled("nothing to do")
    if what == "fail":
        return Failed("the input was bad")
    return Completed("all there", data=42)


def test_a_task_that_returns_a_state_ends_in_it(client: CountingClient, flow: Any) -> None:
    @flow
    def deciding() -> None:
        decides("cancel", return_state=True)
        decides("fail", return_state=True)
        assert decides("complete") == 42

    state = deciding(return_state=True)
    view = FlowRunView.from_flow_run_id(state.flow_run_id, client=client)
    runs = {run.task_slug: run for run in view.get_all_task_runs()}
    assert (runs["decides-1"].state.name, runs["decides-1"].state.message) == (
        "Cancelled",
        "nothing to do",
    )
    assert (runs["decides-2"].state.name, runs["decides-2"].state.message) == (
        "Failed",
        "the input was bad",
    )
    assert runs["decides-3"].state.name == "Completed"
    assert runs["decides-3"].get_result() == 42  # the state's data, not the State pickled
    assert state.is_cancelled()  # a cancelled task run cancels a flow that returns None


def test_an_interrupt_inside_a_flow_records_it_crashed(client: CountingClient, flow: Any) -> None:
    before = runtime_threads()

    @flow
    def interrupted() -> None:
        engine.resolve(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    run = newest_run(client)
    assert run["state"] == "Crashed" and run["state_message"] == "Interrupted: KeyboardInterrupt"
    assert FLOW_RUN.get() is None and runtime_threads() == before

    @flow
    def after() -> int:
        return 1

    state = after(return_state=True)  # a flow of its own, not a child of the dead one
    assert FlowRunView.from_flow_run_id(state.flow_run_id, client=client).parent_task_run_id is None


def test_a_failure_while_finishing_still_ends_the_run(
    client: CountingClient, flow: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = runtime_threads()

    def broken(ctx: Any) -> None:
        raise RuntimeError("finishing broke")

    monkeypatch.setattr(flow_engine, "finish_mapped_parents", broken)

    @flow
    def finishing() -> int:
        return 1

    state = finishing(return_state=True)
    assert state.is_failed() and state.message == "RuntimeError: finishing broke"
    assert FLOW_RUN.get() is None and runtime_threads() == before


def test_a_future_whose_task_run_could_not_be_run_waits_to_crashed(
    client: CountingClient, flow: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*_: Any) -> Any:
        raise ClientError("Cannot reach the runview server at 'x'.")

    @task
    def nothing() -> None:
        return None

    @flow
    def submitting() -> str:
        monkeypatch.setattr(engine, "run_task", unreachable)
        future = nothing.submit()
        state = future.wait()
        assert state.is_crashed() and isinstance(state.exception, ClientError)
        assert state.message == (
            "The runtime could not run it: ClientError: Cannot reach the runview server at 'x'."
        )
        assert state.flow_run_id is not None
        return repr(future)

    assert "Crashed" in submitting()


@task(retries=2, retry_delay_seconds=0)
def flaky(x: int) -> int:
    if x == 1:
        raise ValueError(f"item {x} fails every time")
    return x


def test_a_mapped_parent_with_retries_ends_when_its_children_do(
    client: CountingClient, flow: Any
) -> None:
    @flow
    def mapping() -> None:
        flaky.map([0, 1, 2])

    state = mapping(return_state=True)
    assert state.is_failed(), state
    view = FlowRunView.from_flow_run_id(state.flow_run_id, client=client)
    parent = view.get_task_run("flaky-1")
    # The parent follows its children, and never waits in AwaitingRetry for a rerun.
    assert parent.state.name == "Failed" and parent.state.message == "1 of 3 children failed."
    failing = view.get_task_run("flaky-1", map_index=1)
    assert failing.state.name == "Failed" and failing.run_count == 3  # retries + 1
    assert view.get_task_run("flaky-1", map_index=0).run_count == 1


def test_a_flow_that_returns_futures_returns_their_data(client: CountingClient, flow: Any) -> None:
    @flow
    def returning() -> Any:
        return {"mapped": flaky.map([0, 2]), "one": flaky.submit(2), "plain": 7}

    assert returning() == {"mapped": [0, 2], "one": 2, "plain": 7}

    @flow
    def returning_a_failure() -> Any:
        return flaky.map([0, 1])

    state = returning_a_failure(return_state=True)
    assert state.is_failed()
    assert state.message == (
        "The flow returned a task run that did not complete: an upstream run ended Failed."
    )


@task
def raises_unstorable(i: int) -> int:
    if i == 1:
        raise ValueError("bad \x00 byte, bad \udcff surrogate, " + "x" * 200_000)
    return i


def test_any_exception_message_is_stored(client: CountingClient, flow: Any) -> None:
    """A NUL, a lone surrogate, a huge message: the task run still ends Failed, with the
    message escaped and cut, and its mapped siblings are not affected."""

    @flow
    def mapping() -> None:
        raises_unstorable.map(range(3))

    state = mapping(return_state=True)
    assert state.name == "Failed"
    view = FlowRunView.from_flow_run_id(state.flow_run_id, client=client)
    children = list(view.get_task_run("raises_unstorable-1").iter_mapped())
    assert [run.state.name for run in children] == ["Completed", "Failed", "Completed"]
    message = children[1].state.message or ""
    assert message.startswith("ValueError: bad \\x00 byte, bad \\udcff surrogate, xxx")
    assert message.endswith("more characters cut)")
    assert len(message) < 101_000
