"""Composing flows that explain themselves: a parent waiting on a child flow run says how the
child is doing (in its run logs and on the console), fails with the child's own reason when
the child does not complete, gives up after a timeout, and gets a FlowRunView back from
``wait_for_flow_run`` in either flow style."""

from __future__ import annotations

import contextlib
import logging
import pickle
import runpy
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import sdk.client
from sdk import (
    NOT_LOADED,
    Agent,
    Flow,
    FlowRunView,
    State,
    TaskRunView,
    create_flow_run,
    documents,
    flow,
    get_task_run_result,
    wait_for_flow_run,
)
from sdk.client import Client
from sdk.exceptions import RunCancelled, RunFailed, WaitTimedOut
from sdk.settings import SDKSettings
from tests.sdk.conftest import CountingClient, Recorder, agent_thread
from tests.sdk.test_agent import register_child

FAST = {"poll_interval": 0.02}


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Where the child flow runs run by an agent in this process keep their results."""
    path = tmp_path / "agent-home"
    monkeypatch.setenv("RUNVIEW_HOME", str(path))
    return path


@pytest.fixture
def agent(client: CountingClient, home: Path) -> Iterator[Agent]:
    """An agent running in this process from the start of the test."""
    with agent_thread(client) as running:
        yield running


@pytest.fixture
def as_default(
    client: CountingClient, database_url: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Client]:
    """The default client (used outside flows, and by views loaded from a pickle) reaches
    the same backend as ``client``."""
    if client.api_url is None:
        monkeypatch.delenv("RUNVIEW_API_URL", raising=False)
    else:
        monkeypatch.setenv("RUNVIEW_API_URL", client.api_url)
    monkeypatch.setenv("RUNVIEW_DATABASE_URL", database_url)
    default = sdk.client.default_client()
    yield default
    default.close()


class Seen(logging.Handler):
    """Collects run-log records and tells when one says ``words``."""

    def __init__(self, words: str) -> None:
        super().__init__()
        self.words = words
        self.event = threading.Event()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if self.words in record.getMessage():
            self.event.set()


@contextlib.contextmanager
def watching(words: str) -> Iterator[Seen]:
    handler = Seen(words)
    logger = logging.getLogger("runview.runs")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def run_with_a_late_agent(
    client: Client, parent: Callable[[], State], words: str, labels: list[str] | None = None
) -> State:
    """Run ``parent`` in a thread; start an agent only once a run log says ``words``: the
    parent must say that nobody runs its child, then see an agent do it.

    (The parent's own run is never claimable, even by an agent started earlier: a run its
    process runs itself is created Pending.)
    """
    outcome: dict[str, State] = {}
    with watching(words) as seen:
        waiting = threading.Thread(target=lambda: outcome.update(state=parent()), daemon=True)
        waiting.start()
        assert seen.event.wait(30)
        with agent_thread(client, labels or []):
            waiting.join(60)
    return outcome["state"]


@contextlib.contextmanager
def unconfigured_logging() -> Iterator[None]:
    """The root logger without handlers, as in a script that configured no logging. (Not
    a fixture: pytest adds its capturing handlers to the root when the test body starts.)"""
    root = logging.getLogger()
    saved = root.handlers[:]
    for handler in saved:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in saved:
            root.addHandler(handler)


def results(tmp_path: Path) -> str:
    return str(tmp_path / "r" / "{flow_run_id}" / "{task_run_id}")


def scheduled_run(
    client: Client, labels: list[str] | None = None, entrypoint: str | None = "/x/child.py:child"
) -> str:
    """A Scheduled run of a flow 'child' (no agent runs in the tests that use it)."""
    client.execute(documents.CREATE_FLOW, {"input": {"name": "child", "entrypoint": entrypoint}})
    answer = client.execute(
        documents.CREATE_FLOW_RUN, {"input": {"flow_name": "child", "labels": labels or []}}
    )
    return str(answer["create_flow_run"]["id"])


# Saying how the child is doing


def test_the_parent_logs_that_no_agent_has_claimed_the_child_until_one_does(
    client: CountingClient, home: Path, tmp_path: Path
) -> None:
    register_child(client, tmp_path)

    @flow(name="parent", client=client, result_storage=results(tmp_path))
    def parent() -> Any:
        child_run_id = create_flow_run(flow_name="child", labels=["x"])
        return get_task_run_result(
            child_run_id, "create_some_data-1", timeout=60, log_interval=0.05, **FAST
        )

    # The agent (with the label) starts only once the parent said nobody runs its child.
    state = run_with_a_late_agent(
        client, lambda: parent(return_state=True), "no agent has claimed it", labels=["x"]
    )
    assert state.is_completed(), state
    assert state.result() == [0, 1, 2, 3, 4]

    view = FlowRunView.from_flow_run_id(state.flow_run_id, client=client)
    waiter = view.get_task_run("get_task_run_result-1")
    logs = [log for log in view.get_logs() if log.task_run_id == waiter.task_run_id]
    child_id = view.get_task_run("create_flow_run-1").get_result()
    unclaimed = [log for log in logs if "no agent has claimed it" in log.message]
    assert unclaimed, [log.message for log in logs]
    assert unclaimed[0].level == logging.WARNING
    assert unclaimed[0].name == "runview.runs.get_task_run_result-1"
    assert unclaimed[0].message == (
        f"Flow run {child_id!r} of flow 'child' is still Scheduled: no agent has claimed it; is"
        " `runview agent start` running, with the labels ['x'] (`runview agent start --label"
        " x`)?"
    )
    assert (
        logs[0].message
        == f"Waiting for flow run {child_id!r} of flow 'child' to finish; it is Scheduled."
    )
    assert logs[-1].message == f"Flow run {child_id!r} of flow 'child' ended Completed."


def test_outside_a_flow_the_wait_speaks_on_the_console_and_gives_up_after_its_timeout(
    client: CountingClient,
    as_default: Client,
    capsys: pytest.CaptureFixture[str],
) -> None:
    child_run_id = scheduled_run(client, labels=["x"])

    with unconfigured_logging(), pytest.raises(WaitTimedOut) as raised:
        wait_for_flow_run(child_run_id, timeout=0.3, log_interval=0.05, **FAST)

    assert isinstance(raised.value, TimeoutError)
    assert str(raised.value) == (
        f"Flow run {child_run_id!r} of flow 'child' is still Scheduled after 0.3 s, the timeout:"
        " no agent has claimed it; is `runview agent start` running, with the labels ['x']"
        " (`runview agent start --label x`)?"
    )
    assert raised.value.state is not None and raised.value.state.name == "Scheduled"
    err = capsys.readouterr().err
    assert (
        f"INFO    | runview.runs.wait_for_flow_run - Waiting for flow run {child_run_id!r}" in err
    )
    assert "WARNING | runview.runs.wait_for_flow_run - Flow run" in err
    assert "is still Scheduled: no agent has claimed it" in err and "['x']" in err


def test_with_logging_configured_the_wait_lines_are_not_printed_twice(
    client: CountingClient,
    as_default: Client,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    child_run_id = scheduled_run(client)

    with pytest.raises(WaitTimedOut, match="after 0.2 s, the timeout: no agent has claimed"):
        get_task_run_result(child_run_id, "create_some_data-1", timeout=0.2, log_interval=0.05)

    # The root logger has a handler (caplog's): the records go there, and only there.
    unclaimed = [r for r in caplog.records if "no agent has claimed it" in r.getMessage()]
    assert unclaimed and unclaimed[0].name == "runview.runs.get_task_run_result"
    assert "is `runview agent start` running?" in unclaimed[0].getMessage()
    assert "no agent" not in capsys.readouterr().err


def test_a_child_of_a_flow_without_an_entrypoint_is_said_to_wait_for_nobody(
    client: CountingClient, as_default: Client, caplog: pytest.LogCaptureFixture
) -> None:
    child_run_id = scheduled_run(client, entrypoint=None)

    with pytest.raises(WaitTimedOut) as raised:
        # A log line is due every 0.05 s: a second leaves room for a slow poll on a busy box.
        wait_for_flow_run(child_run_id, timeout=1.0, log_interval=0.05, **FAST)

    why = (
        "no agent can claim it, as flow 'child' has no entrypoint (record one: `runview"
        " register FILE`)."
    )
    assert str(raised.value).endswith(f"after 1 s, the timeout: {why}")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and warnings[0].endswith(f"is still Scheduled: {why}")


# Children that do not complete


def test_a_child_whose_flow_cannot_be_loaded_fails_the_parent_with_the_childs_reason(
    client: CountingClient, agent: Agent, tmp_path: Path
) -> None:
    entrypoint = f"{tmp_path / 'gone.py'}:child_flow"
    client.execute(documents.CREATE_FLOW, {"input": {"name": "child", "entrypoint": entrypoint}})

    with Flow("parent", client=client, result_storage=results(tmp_path)) as parent_flow:
        child_run_id = create_flow_run(flow_name="child")
        get_task_run_result(child_run_id, "create_some_data-1", **FAST)

    state = parent_flow.run()
    assert state.is_failed(), state
    view = FlowRunView.from_flow_run_id(state.flow_run_id, client=client)
    child_id = view.get_task_run("create_flow_run-1").get_result()
    message = view.get_task_run("get_task_run_result-1").state.message or ""
    assert message == (
        f"RunFailed: Flow run {child_id!r} of flow 'child' ended Failed: cannot load flow"
        f" 'child' from {str(tmp_path / 'gone.py')!r}: No such file or directory; task run"
        " 'create_some_data-1' has no result."
    ), message


FAILING_CHILD = """
from sdk import Flow, task


@task
def create_some_data():
    return list(range(5))


@task
def check(data):
    raise ValueError("bad data")


with Flow("child") as child_flow:
    check(create_some_data())
"""


def test_a_failed_child_gives_no_result_even_of_a_task_run_that_completed(
    client: CountingClient, as_default: Client, tmp_path: Path
) -> None:
    path = tmp_path / "child.py"
    path.write_text(FAILING_CHILD)
    child_flow = runpy.run_path(str(path))["child_flow"]
    child_flow.client = client
    child = child_flow.run()
    assert child.is_failed(), child

    with pytest.raises(RunFailed) as raised:
        get_task_run_result(child.flow_run_id, "create_some_data-1")

    assert str(raised.value) == (
        f"Flow run {str(child.flow_run_id)!r} of flow 'child' ended Failed: 1 of 2 task runs"
        " failed; its task run 'create_some_data-1' completed, but results are taken only from a"
        " flow run that completed (TaskRunView.from_task_slug reads it anyway)."
    )
    assert raised.value.state is not None and raised.value.state.is_failed()


def test_a_cancelled_child_fails_the_wait_naming_cancelled(
    client: CountingClient, tmp_path: Path
) -> None:
    register_child(client, tmp_path)
    child_run_id = client.execute(documents.CREATE_FLOW_RUN, {"input": {"flow_name": "child"}})[
        "create_flow_run"
    ]["id"]
    client.execute(documents.CANCEL_FLOW_RUN, {"input": {"flow_run_id": child_run_id}})

    @flow(name="parent", client=client, result_storage=results(tmp_path))
    def parent() -> list[str]:
        returned = wait_for_flow_run(child_run_id).state.name
        said = []
        for waiting in (
            lambda: get_task_run_result(child_run_id, "create_some_data-1"),
            lambda: wait_for_flow_run(child_run_id, raise_final_state=True),
        ):
            try:
                waiting()
            except RunCancelled as error:
                assert error.state is not None and error.state.is_cancelled()
                said.append(str(error))
        return [returned, *said]

    name = f"Flow run {child_run_id!r} of flow 'child'"
    assert parent() == [
        "Cancelled",
        f"{name} ended Cancelled: Cancelled by request; task run 'create_some_data-1' has no"
        " result.",
        f"{name} ended Cancelled: Cancelled by request.",
    ]


def test_a_completed_child_without_the_task_run_asked_for_lists_those_it_has(
    client: CountingClient, agent: Agent, tmp_path: Path
) -> None:
    register_child(client, tmp_path)

    with Flow("parent", client=client, result_storage=results(tmp_path)) as parent_flow:
        child_run_id = create_flow_run(flow_name="child")
        get_task_run_result(child_run_id, "create_some_data-2", **FAST)

    state = parent_flow.run()
    assert state.is_failed(), state
    view = FlowRunView.from_flow_run_id(state.flow_run_id, client=client)
    child_id = view.get_task_run("create_flow_run-1").get_result()
    assert view.get_task_run("get_task_run_result-1").state.message == (
        f"NotFound: Flow run {child_id!r} of flow 'child' has no task run 'create_some_data-2';"
        " its task runs are: 'create_some_data-1'."
    )


# wait_for_flow_run as a task


def test_wait_for_flow_run_is_a_task_in_both_flow_styles(
    client: CountingClient, as_default: Client, tmp_path: Path
) -> None:
    register_child(client, tmp_path)

    with Flow("graph_parent", client=client, result_storage=results(tmp_path)) as graph_parent:
        wait_for_flow_run(create_flow_run(flow_name="child"), **FAST)

    @flow(client=client, result_storage=results(tmp_path))
    def eager_parent() -> str:
        child = wait_for_flow_run(create_flow_run(flow_name="child"), **FAST)
        assert isinstance(child, FlowRunView)  # in this process: the very view returned
        return str(child.state.name)

    graph = run_with_a_late_agent(client, graph_parent.run, "Waiting for")
    eager = run_with_a_late_agent(client, lambda: eager_parent(return_state=True), "Waiting for")
    assert eager.result() == "Completed"
    for state in (graph, eager):
        assert state.is_completed(), state
        # Read back from result storage: the pickled snapshot, with the default client.
        task_run = TaskRunView.from_task_slug(
            "wait_for_flow_run-1", state.flow_run_id, client=client
        )
        child = task_run.get_result()
        assert isinstance(child, FlowRunView)
        assert child.flow_name == "child" and child.state.is_completed()
        assert child._client is as_default
        assert child.get_task_run("create_some_data-1").get_result() == [0, 1, 2, 3, 4]
        created = TaskRunView.from_task_slug("create_flow_run-1", state.flow_run_id, client=client)
        assert child.parent_task_run_id == created.task_run_id


def test_a_view_pickles_as_its_snapshot_and_loads_with_the_default_client(
    client: CountingClient, recorder: Recorder, as_default: Client
) -> None:
    run_id = recorder.flow_run()
    task_run_id = recorder.task_run(run_id, "foo-1")
    recorder.finish(run_id, task_run_id, "foobar!")
    view = FlowRunView.from_flow_run_id(run_id, client=client)
    task_run = view.get_task_run("foo-1")
    assert task_run.get_result() == "foobar!"  # loaded, and cached by the flow run view

    loaded_view: FlowRunView = pickle.loads(pickle.dumps(view))
    loaded_task_run: TaskRunView = pickle.loads(pickle.dumps(task_run))

    assert loaded_view == view and loaded_task_run == task_run
    assert loaded_view._client is as_default and loaded_task_run._client is as_default
    assert loaded_view._task_runs.by_id == {}  # caches and loaded results stay behind
    assert loaded_task_run._result.value is NOT_LOADED
    assert loaded_view.state.data is NOT_LOADED  # the sentinel, not a copy of it
    assert loaded_task_run.get_result() == "foobar!"
    assert loaded_view.get_latest().get_task_run("foo-1").get_result() == "foobar!"


def test_a_parent_being_cancelled_stops_waiting(
    client: CountingClient, database_url: str, tmp_path: Path
) -> None:
    # A client that beats often, so that the parent learns of its cancellation quickly.
    settings = SDKSettings(
        home=tmp_path / "home", database_url=database_url, heartbeat_interval_seconds=0.05
    )
    beating = Client(client.api_url, settings=settings)
    child_run_id = scheduled_run(client)

    @flow(name="parent", client=beating, result_storage=results(tmp_path))
    def parent() -> None:
        wait_for_flow_run(child_run_id, timeout=60, **FAST)

    outcome: dict[str, State] = {}
    waiting = threading.Thread(
        target=lambda: outcome.update(state=parent(return_state=True)), daemon=True
    )
    try:
        with watching("Waiting for") as seen:
            waiting.start()
            assert seen.event.wait(30)
        parent_id = seen.records[0].flow_run_id  # type: ignore[attr-defined]
        client.execute(documents.CANCEL_FLOW_RUN, {"input": {"flow_run_id": str(parent_id)}})
        waiting.join(30)
    finally:
        beating.close()
    assert outcome["state"].is_cancelled(), outcome["state"]
    child = FlowRunView.from_flow_run_id(child_run_id, client=client)
    assert child.state.name == "Scheduled"  # the child is not the parent's to cancel
