"""Seed 001's parent and child flows: the parent schedules a run of the child, an agent runs
it, and the parent takes a task run's result out of it."""

from __future__ import annotations

import runpy
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdk import Agent, Flow, FlowRunView, create_flow_run, documents, get_task_run_result
from tests.sdk.conftest import CountingClient

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
    running = Agent(client=client, poll_interval=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=running.start, args=(stop,), daemon=True)
    thread.start()
    yield running
    stop.set()
    thread.join(timeout=30)


def register_child(client: CountingClient, tmp_path: Path) -> None:
    path = tmp_path / "child.py"
    path.write_text(CHILD)
    child_flow: Any = runpy.run_path(str(path))["child_flow"]
    child_flow.client = client
    child_flow.register(entrypoint=f"{path}:child_flow")


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


def test_the_agent_command_runs_a_scheduled_flow_run(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time

    from backend.settings import Settings
    from backend.testing import ServerThread
    from sdk import Client

    server = ServerThread(
        Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", run_services=False)
    ).start()
    client = Client(f"{server.url}/graphql")
    try:
        register_child(client, tmp_path)
        run_id = client.execute(
            documents.CREATE_FLOW_RUN, {"input": {"flow_name": "child", "idempotency_key": "a"}}
        )["create_flow_run"]["id"]
        env = {
            **os.environ,
            "RUNVIEW_API_URL": f"{server.url}/graphql",
            "RUNVIEW_HOME": str(tmp_path),
        }
        command = [sys.executable, "-m", "sdk.cli", "agent", "start", "--poll-interval", "0.1"]
        agent = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            deadline = time.monotonic() + 30
            while not FlowRunView.from_flow_run_id(run_id, client=client).state.is_final():
                assert time.monotonic() < deadline and agent.poll() is None
                time.sleep(0.1)
        finally:
            agent.terminate()
            agent.communicate(timeout=20)
        view = FlowRunView.from_flow_run_id(run_id, client=client)
        assert view.state.is_completed()
        assert view.get_task_run("create_some_data-1").get_result() == [0, 1, 2, 3, 4]
    finally:
        client.close()
        server.stop()
