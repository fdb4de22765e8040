"""The agent runs each flow run in a process of its own: a process that dies ends its run
Crashed with the reason and its last words on stderr, a cancel stops the process, ``limit``
bounds how many run at once, two agents never run a run twice, and a stopped agent ends
what it was running. Real processes, a real server or the embedded database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sdk import Agent, Client, FlowRunView, State, documents
from sdk._run_process import environment
from sdk.settings import SDKSettings
from tests.conftest import Server

# Each agent test once over HTTP to a server on PostgreSQL, once embedded on SQLite (the
# agent and each run's process then open the same database file).
MODES = pytest.mark.parametrize(
    ("client", "database_url"),
    [("http", "postgresql"), ("embedded", "sqlite")],
    indirect=True,
    ids=["http-postgresql", "embedded-sqlite"],
)

KILLER = """
import os
import sys

from sdk import flow


@flow
def killer():
    print("about to be killed", file=sys.stderr, flush=True)
    os.kill(os.getpid(), 9)
"""

EXITER = """
import os
import sys

from sdk import flow


@flow
def exiter():
    for i in range(100):
        print(f"line {i} " + "x" * 1000, file=sys.stderr)
    print("the last words", file=sys.stderr, flush=True)
    os._exit(3)
"""

BROKEN = """
raise RuntimeError("broken at import")
"""

SLEEPER = """
import os
import time
from pathlib import Path

from sdk import flow, task


@task
def nap():
    time.sleep(60)


@flow
def sleeper(pid_file: str):
    Path(pid_file).write_text(str(os.getpid()))
    nap()
"""

GATED = """
import time
from pathlib import Path

from sdk import flow


@flow
def gated(gate: str):
    while not Path(gate).exists():
        time.sleep(0.05)
"""

QUICK = """
from sdk import flow


@flow
def quick(i: int):
    return i
"""


@pytest.fixture(autouse=True)
def agent_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Where the runs' processes keep their results (they inherit this environment)."""
    path = tmp_path / "agent-home"
    monkeypatch.setenv("RUNVIEW_HOME", str(path))
    return path


def register(client: Client, tmp_path: Path, name: str, source: str) -> None:
    """The flow ``name`` of ``source``, registered with an entrypoint in a file of its own."""
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    flow_input = {"name": name, "entrypoint": f"{path}:{name}"}
    client.execute(documents.CREATE_FLOW, {"input": flow_input})


def schedule(client: Client, flow_name: str, **parameters: Any) -> str:
    answer = client.execute(
        documents.CREATE_FLOW_RUN, {"input": {"flow_name": flow_name, "parameters": parameters}}
    )
    return str(answer["create_flow_run"]["id"])


def view(client: Client, run_id: str) -> FlowRunView:
    return FlowRunView.from_flow_run_id(run_id, client=client)


def wait_until(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def is_running(client: Client, run_id: str) -> bool:
    return view(client, run_id).state.type == "RUNNING"


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@contextmanager
def agent_thread(client: Client, **options: Any) -> Iterator[Agent]:
    """An agent in a thread of this process that beats (and so notices cancels) fast."""
    options = {"poll_interval": 0.05, "heartbeat_interval": 0.2, **options}
    agent = Agent(client=client, **options)
    stop = threading.Event()
    thread = threading.Thread(target=agent.start, args=(stop,), daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the agent did not stop"


def test_a_runs_process_reaches_the_server_the_way_the_agent_does(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RUNVIEW_API_KEY", "the environment's")
    monkeypatch.setenv("RUNVIEW_DATABASE_URL", "sqlite+aiosqlite:///elsewhere.db")
    settings = SDKSettings(home=tmp_path, heartbeat_interval_seconds=0.5)
    with Client("http://127.0.0.1:9/graphql", api_key="the agent's", settings=settings) as http:
        env = environment(http)
    assert env["RUNVIEW_API_URL"] == "http://127.0.0.1:9/graphql"
    assert env["RUNVIEW_API_KEY"] == "the agent's"
    assert env["RUNVIEW_HEARTBEAT_INTERVAL_SECONDS"] == "0.5"
    assert env["RUNVIEW_HOME"] == str(tmp_path / "agent-home")  # this process's own

    monkeypatch.setenv("RUNVIEW_API_URL", "http://127.0.0.1:9/graphql")
    settings = SDKSettings(api_url=None, api_key=None, database_url=None, home=tmp_path)
    with Client(settings=settings) as embedded:
        env = environment(embedded)
    assert "RUNVIEW_API_URL" not in env and "RUNVIEW_API_KEY" not in env
    assert env["RUNVIEW_DATABASE_URL"] == f"sqlite+aiosqlite:///{tmp_path / 'runview.db'}"


@MODES
def test_a_process_killed_by_a_signal_ends_its_run_crashed_naming_the_signal(
    client: Client, tmp_path: Path
) -> None:
    register(client, tmp_path, "killer", KILLER)
    run_id = schedule(client, "killer")

    [state] = Agent(client=client).run_once()

    assert state.name == "Crashed", state
    message = view(client, run_id).state.message or ""
    assert message.startswith("Its process was killed by signal SIGKILL"), message
    assert message.endswith("The last lines of its stderr:\nabout to be killed"), message


@MODES
def test_a_process_that_exits_or_a_flow_that_cannot_be_imported_says_why(
    client: Client, tmp_path: Path
) -> None:
    register(client, tmp_path, "exiter", EXITER)
    register(client, tmp_path, "broken", BROKEN)
    exiter, broken = schedule(client, "exiter"), schedule(client, "broken")

    states = Agent(client=client).run_once(limit=2)

    assert sorted(s.name for s in states) == ["Crashed", "Failed"]
    message = view(client, exiter).state.message or ""
    assert message.startswith("Its process exited with code 3 before the run ended."), message
    # The last lines of its stderr, bounded: each line, and all of them.
    assert message.endswith("line 99 " + "x" * 491 + "…\nthe last words"), message[-600:]
    assert "line 0 " not in message and len(message) < 5_000
    message = view(client, broken).state.message or ""
    assert message.startswith(f"cannot load flow 'broken' from {str(tmp_path / 'broken.py')!r}")
    assert "RuntimeError: broken at import" in message, message


@MODES
def test_cancelling_a_running_flow_stops_its_process(client: Client, tmp_path: Path) -> None:
    register(client, tmp_path, "sleeper", SLEEPER)
    pid_file = tmp_path / "pid"
    run_id = schedule(client, "sleeper", pid_file=str(pid_file))
    with agent_thread(client):
        wait_until("the flow runs", lambda: pid_file.exists() and is_running(client, run_id))
        pid = int(pid_file.read_text())
        cancelled = time.monotonic()
        client.execute(documents.CANCEL_FLOW_RUN, {"input": {"flow_run_id": run_id}})
        wait_until("Cancelled", lambda: view(client, run_id).state.is_final(), timeout=15)
        took = time.monotonic() - cancelled

    run = view(client, run_id)
    assert run.state.name == "Cancelled", run.state
    assert took < 10, took  # the task was sleeping for 60 s
    assert gone(pid)
    assert run.get_task_run("nap-1").state.name == "Cancelled"


@MODES
def test_an_agent_runs_at_most_limit_runs_at_once(client: Client, tmp_path: Path) -> None:
    register(client, tmp_path, "gated", GATED)
    gate = tmp_path / "gate"
    runs = [schedule(client, "gated", gate=str(gate)) for _ in range(3)]

    def types() -> list[str]:
        return sorted(view(client, run_id).state.type for run_id in runs)

    with agent_thread(client, limit=2):
        wait_until("two runs running", lambda: types().count("RUNNING") == 2)
        time.sleep(0.5)  # time to claim a third, if it would
        assert types() == ["RUNNING", "RUNNING", "SCHEDULED"]
        gate.touch()
        wait_until("all completed", lambda: types() == ["COMPLETED"] * 3)


RUNS_OF = """
query ($flow: String!) {
  flow_run(where: {flow: {name: {_eq: $flow}}}) { id state states { type } }
}
"""


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_agents_run_each_of_30_runs_exactly_once(server: Server, tmp_path: Path) -> None:
    clients = [Client(f"{server.url}/graphql") for _ in range(2)]
    try:
        register(clients[0], tmp_path, "quick", QUICK)
        for i in range(30):  # each run is a process start: enough to race, not a minute
            schedule(clients[0], "quick", i=i)

        def runs() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = server.data(RUNS_OF, {"flow": "quick"})["flow_run"]
            return found

        with agent_thread(clients[0], limit=3), agent_thread(clients[1], limit=3):
            over = {"Completed", "Failed", "Crashed", "Cancelled"}
            # ~25 s on a quiet 2-core box (a process start per run); a busy one needs more.
            wait_until("all over", lambda: all(r["state"] in over for r in runs()), timeout=300)
    finally:
        for client in clients:
            client.close()

    finished = runs()
    assert len(finished) == 30
    assert {r["state"] for r in finished} == {"Completed"}
    assert {sum(s["type"] == "RUNNING" for s in r["states"]) for r in finished} == {1}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_sigterm_stops_the_agent_command_and_crashes_what_it_ran(
    server: Server, tmp_path: Path
) -> None:
    client = Client(f"{server.url}/graphql")
    register(client, tmp_path, "sleeper", SLEEPER)
    pid_file = tmp_path / "pid"
    run_id = schedule(client, "sleeper", pid_file=str(pid_file))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNVIEW_")}
    env |= {"RUNVIEW_API_URL": f"{server.url}/graphql", "RUNVIEW_HOME": str(tmp_path)}
    command = [sys.executable, "-m", "sdk.cli", "agent", "start", "--poll-interval", "0.1"]
    grace = 1.0
    with (tmp_path / "out").open("w+") as out, (tmp_path / "err").open("w+") as err:
        agent = subprocess.Popen(
            [*command, "--grace-seconds", str(grace)], env=env, stdout=out, stderr=err, text=True
        )
        try:
            wait_until("the flow runs", lambda: pid_file.exists() and is_running(client, run_id))
            stopped = time.monotonic()
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=grace + 20)
            took = time.monotonic() - stopped
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
        out.seek(0)
        err.seek(0)
        output, errors = out.read(), err.read()

    state: State = view(client, run_id).state
    client.close()
    assert agent.returncode == 0, output + errors
    assert took < grace + 5, took
    assert gone(int(pid_file.read_text()))
    assert state.name == "Crashed", state
    assert (state.message or "").startswith("The agent stopped"), state.message
    assert "stopping: no more claims; the flow runs still running (1) get 1 s to finish" in output
    assert output.endswith("agent stopped\n"), output
    assert "Traceback" not in output + errors, output + errors
