"""Seed 001's parent and child flows: the parent schedules a run of the child, an agent runs
it, and the parent takes a task run's result out of it. And the agent itself: it says what
it claimed and how each run ended, and no failure of one run (or of claiming) stops it."""

from __future__ import annotations

import logging
import runpy
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdk import (
    Agent,
    Client,
    Flow,
    FlowRunView,
    create_flow_run,
    documents,
    get_task_run_result,
)
from tests.sdk.conftest import CountingClient, agent_thread

CHILD = """
from sdk import Flow, task


@task
def create_some_data():
    return list(range(5))


with Flow("child") as child_flow:
    data = create_some_data()
"""


@pytest.fixture
def agent(
    client: CountingClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Agent]:
    monkeypatch.setenv("RUNVIEW_HOME", str(tmp_path / "agent-home"))  # results of the child
    with agent_thread(client) as running:
        yield running


def register_child(client: CountingClient, tmp_path: Path) -> None:
    path = tmp_path / "child.py"
    path.write_text(CHILD)
    child_flow: Any = runpy.run_path(str(path))["child_flow"]
    child_flow.client = client
    child_flow.register(entrypoint=f"{path}:child_flow")


QUITTER = """
import sys

from sdk import flow


@flow
def quitter():
    sys.exit(3)
"""


def register_file(client: Any, tmp_path: Path, flow_name: str, source: str | None) -> str:
    """A flow registered with an entrypoint in ``<flow_name>.py`` (missing if ``source`` is
    None), and a Scheduled run of it; the run's id."""
    path = tmp_path / f"{flow_name}.py"
    if source is not None:
        path.write_text(source)
    flow_input = {"name": flow_name, "entrypoint": f"{path}:{flow_name}"}
    client.execute(documents.CREATE_FLOW, {"input": flow_input})
    answer = client.execute(documents.CREATE_FLOW_RUN, {"input": {"flow_name": flow_name}})
    return str(answer["create_flow_run"]["id"])


def test_a_parent_flow_takes_a_result_out_of_a_child_flow_run(
    client: CountingClient, agent: Agent, tmp_path: Path
) -> None:
    register_child(client, tmp_path)

    with Flow(
        "parent", client=client, result_storage=str(tmp_path / "r" / "{task_run_id}")
    ) as parent_flow:
        child_run_id = create_flow_run(flow_name="child")
        child_data = get_task_run_result(child_run_id, "create_some_data-1", poll_interval=0.05)

    state = parent_flow.run()
    assert state.is_completed(), state
    parent = FlowRunView.from_flow_run_id(state.flow_run_id, client=client)
    # At runtime, `child_data` is [0, 1, 2, 3, 4].
    assert parent.get_task_run("get_task_run_result-1").get_result() == [0, 1, 2, 3, 4]
    assert child_data.slug == "get_task_run_result-1"

    child_id = parent.get_task_run("create_flow_run-1").get_result()
    child = FlowRunView.from_flow_run_id(child_id, client=client)
    assert child.flow_name == "child" and child.state.is_completed()
    assert child.parent_task_run_id == parent.get_task_run("create_flow_run-1").task_run_id
    assert [s.name for s in child.states] == ["Scheduled", "Pending", "Running", "Completed"]
    assert child_run_id.slug == "create_flow_run-1"


def test_an_agent_fails_a_run_whose_flow_it_cannot_load(
    client: CountingClient, tmp_path: Path
) -> None:
    entrypoint = f"{tmp_path / 'gone.py'}:nowhere"
    client.execute(documents.CREATE_FLOW, {"input": {"name": "nowhere", "entrypoint": entrypoint}})
    run_id = client.execute(
        documents.CREATE_FLOW_RUN,
        {"input": {"flow_name": "nowhere", "idempotency_key": "once"}},
    )["create_flow_run"]["id"]
    # A flow without an entrypoint is run by the process that created its run: not claimed.
    client.execute(documents.CREATE_FLOW, {"input": {"name": "in_process"}})
    client.execute(documents.CREATE_FLOW_RUN, {"input": {"flow_name": "in_process"}})
    states = Agent(client=client).run_once()
    assert [s.name for s in states] == ["Failed"]
    view = FlowRunView.from_flow_run_id(run_id, client=client)
    assert view.state.is_failed()
    assert "gone.py" in (view.state.message or ""), view.state.message
    assert Agent(client=client).run_once() == []  # nothing else is due


def test_the_agent_says_what_it_claimed_and_how_each_run_ended(
    client: CountingClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNVIEW_HOME", str(tmp_path / "agent-home"))
    caplog.set_level(logging.INFO, logger="runview.agent")
    register_child(client, tmp_path)
    child = client.execute(documents.CREATE_FLOW_RUN, {"input": {"flow_name": "child"}})
    child_id = child["create_flow_run"]["id"]
    quitter_id = register_file(client, tmp_path, "quitter", QUITTER)
    gone_id = register_file(client, tmp_path, "gone", None)

    states = Agent(client=client).run_once(limit=3)

    # One run that stopped the process it ran in (sys.exit) did not stop the agent.
    assert sorted(s.name for s in states) == ["Completed", "Crashed", "Failed"]
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "runview.agent"]
    for run_id, name in [(child_id, "child"), (gone_id, "gone"), (quitter_id, "quitter")]:
        claimed = f"claimed flow run {run_id} (flow {name!r}); running it in process "
        assert any(level == "INFO" and line.startswith(claimed) for level, line in lines), lines
    gone = f"cannot load flow 'gone' from {str(tmp_path / 'gone.py')!r}: No such file or directory."
    for expected in [
        ("INFO", f"flow run {child_id} (flow 'child') ended Completed"),
        ("WARNING", f"flow run {gone_id} (flow 'gone') ended Failed: {gone}"),
        # The runtime itself records a run whose code exits Crashed, then lets it exit.
        (
            "WARNING",
            f"flow run {quitter_id} (flow 'quitter') ended Crashed: Interrupted: SystemExit: 3",
        ),
    ]:
        assert expected in lines, lines
    assert len(lines) == 6, lines  # one line per claim and per outcome
    view = FlowRunView.from_flow_run_id(quitter_id, client=client)
    assert view.state.name == "Crashed"


def test_an_agent_that_cannot_claim_says_so_and_keeps_trying(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()

    class StopAfterTwo(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if sum("cannot claim" in r.getMessage() for r in caplog.records) >= 2:
                stop.set()

    handler = StopAfterTwo()
    logging.getLogger("runview.agent").addHandler(handler)
    # Nothing listens on port 9 of this machine: every claim fails at once.
    with Client("http://127.0.0.1:9/graphql") as unreachable:
        try:
            Agent(client=unreachable, poll_interval=0.01).start(stop)  # returns: it went on
        finally:
            logging.getLogger("runview.agent").removeHandler(handler)
    failures = [r for r in caplog.records if "cannot claim" in r.getMessage()]
    assert failures[0].levelname == "ERROR"
    assert failures[0].getMessage().startswith("cannot claim flow runs: ClientError: Cannot reach")
    assert failures[0].getMessage().endswith("; trying again in 0.01 s")


def test_the_agent_command_prints_each_claim_and_each_outcome(tmp_path: Path) -> None:
    import os
    import queue
    import signal
    import subprocess
    import sys

    from backend.settings import Settings
    from backend.testing import ServerThread

    server = ServerThread(
        Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", run_services=False)
    ).start()
    client = Client(f"{server.url}/graphql")
    try:
        register_child(client, tmp_path)
        run_id = client.execute(
            documents.CREATE_FLOW_RUN, {"input": {"flow_name": "child", "idempotency_key": "a"}}
        )["create_flow_run"]["id"]
        gone_id = register_file(client, tmp_path, "gone", None)
        quitter_id = register_file(client, tmp_path, "quitter", QUITTER)
        env = {
            **os.environ,
            "RUNVIEW_API_URL": f"{server.url}/graphql",
            "RUNVIEW_HOME": str(tmp_path),
        }
        command = [sys.executable, "-m", "sdk.cli", "agent", "start", "--poll-interval", "0.1"]
        with (tmp_path / "stderr").open("w+") as stderr:
            agent = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
            )
            assert agent.stdout is not None
            lines: queue.Queue[str] = queue.Queue()
            reader = threading.Thread(target=lambda: [lines.put(line) for line in agent.stdout])
            reader.start()
            out = []
            try:
                # Until the third outcome line; a line that never comes fails the get.
                while sum(" ended " in line for line in out) < 3:
                    out.append(lines.get(timeout=30))
            finally:
                agent.send_signal(signal.SIGINT)
                agent.wait(timeout=20)
                reader.join(timeout=20)
                agent.stdout.close()
            out.extend(lines.queue)
            stderr.seek(0)
            err = stderr.read()
    finally:
        client.close()
        server.stop()

    text = "".join(out)
    assert agent.returncode == 0 and out[-1].endswith("agent stopped\n"), text
    assert "Traceback" not in text and "Traceback" not in err, text + err
    gone = f"cannot load flow 'gone' from {str(tmp_path / 'gone.py')!r}: No such file or directory."
    for expected in [
        f"claimed flow run {run_id} (flow 'child')",
        f"flow run {run_id} (flow 'child') ended Completed",
        f"claimed flow run {gone_id} (flow 'gone')",
        f"flow run {gone_id} (flow 'gone') ended Failed: {gone}",
        f"flow run {quitter_id} (flow 'quitter') ended Crashed: Interrupted: SystemExit: 3",
    ]:
        assert expected in text, text
    assert "runview:" not in err, err  # how the command line reports an error of its own
