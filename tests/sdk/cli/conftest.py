"""The ``runview`` command as users run it: a subprocess, against a real server over HTTP or
embedded over the same database, with flows recorded by the real runtime."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sdk import Client
from sdk.results import ResultStorage
from tests.conftest import DatabaseFactory, Server

# How the command reaches the backend, and over which database: both ways and both
# databases, each once (every command is a few seconds of subprocess; the API's own tests
# cover each database in depth).
BOTH_MODES = [("server", "postgresql"), ("embedded", "sqlite")]

FLOWS = """
from sdk import Flow, flow, get_run_logger, task


@task
def say_hello(name):
    get_run_logger().info("Hello, %s!", name)
    get_run_logger().warning("careful, %s", name)
    return f"Hello, {name}!"


@task
def inc(x):
    return x + 1


@task
def check(x):
    if x == 1:
        raise ValueError(f"item {x} is bad")
    return x


@task
def make_set():
    return {1, 2}


@flow
def hello(name: str = "Marvin"):
    say_hello(name)
    make_set()
    return inc.map([0, 1, 2]).result()


@flow
def checks():
    check.map([0, 1, 2])


with Flow("graph") as graph:
    inc(1)
"""


@dataclass
class AgentProcess:
    process: subprocess.Popen[str]
    output: str = ""


@dataclass
class Cli:
    """Runs ``runview ...`` in a subprocess; never accepts a traceback."""

    env: dict[str, str]
    cwd: Path
    server: Server
    client: Client
    ids: dict[str, str] = field(default_factory=dict)

    def __call__(
        self, *args: str, code: int | None = 0, timeout: float = 60, **env: str | None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``runview *args``; ``env`` adds variables (None: removes one)."""
        merged = {**self.env, **env}
        result = subprocess.run(
            [sys.executable, "-m", "sdk.cli", *args],
            env={key: value for key, value in merged.items() if value is not None},
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert "Traceback" not in result.stderr + result.stdout, result.stderr
        if code is not None:
            assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--output", "json").stdout)

    def error(self, *args: str, code: int = 1, **env: str | None) -> str:
        """The one line a failing command writes to stderr."""
        result = self(*args, code=code, **env)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("runview: "), result.stderr
        return lines[0]

    @contextmanager
    def agent(self) -> Iterator[AgentProcess]:
        """A real ``runview agent start`` beside the test; its output once it is stopped."""
        process = subprocess.Popen(
            [sys.executable, "-m", "sdk.cli", "agent", "start", "--poll-interval", "0.1"],
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        agent = AgentProcess(process)
        try:
            yield agent
        finally:
            process.terminate()
            agent.output = process.communicate(timeout=30)[0]

    def run_flow(self, flow_name: str, **parameters: Any) -> str:
        """Run a flow of FLOWS in this process (the real runtime); its flow run id."""
        found = runpy.run_path(str(self.cwd / "flows.py"))[flow_name]
        found.client = self.client
        found.result_storage = ResultStorage(
            str(self.cwd / "results" / "{flow_run_id}" / "{task_run_id}")
        )
        state = found.run(parameters) if found.graph else found(**parameters, return_state=True)
        return str(state.flow_run_id)


def _cli(mode: str, backend: str, databases: DatabaseFactory, tmp: Path) -> Iterator[Cli]:
    url = databases.new(backend)
    server = Server(url).start()
    client = Client(f"{server.url}/graphql")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNVIEW_")}
    env["RUNVIEW_HOME"] = str(tmp / "home")
    # The default results directory (agents write there), and where run_flow writes.
    env["RUNVIEW_TRUSTED_RESULT_ROOTS"] = f"{tmp / 'home' / 'results'},{tmp / 'results'}"
    if mode == "server":
        env["RUNVIEW_API_URL"] = f"{server.url}/graphql"
    else:
        env["RUNVIEW_DATABASE_URL"] = url
    (tmp / "flows.py").write_text(FLOWS)
    try:
        yield Cli(env=env, cwd=tmp, server=server, client=client)
    finally:
        client.close()
        server.stop()


@pytest.fixture(params=BOTH_MODES, ids=lambda p: "-".join(p))
def cli(
    request: pytest.FixtureRequest, databases: DatabaseFactory, tmp_path: Path
) -> Iterator[Cli]:
    """A fresh database, and the command reaching it one way."""
    yield from _cli(*request.param, databases, tmp_path)


@pytest.fixture(scope="module", params=BOTH_MODES, ids=lambda p: "-".join(p))
def recorded(
    request: pytest.FixtureRequest,
    databases: DatabaseFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cli]:
    """Registered flows with finished runs, for the module's tests to read (only read)."""
    for cli in _cli(*request.param, databases, tmp_path_factory.mktemp("cli")):
        cli("register", "flows.py")
        cli.ids["checks"] = cli.run_flow("checks")
        cli.ids["hello"] = cli.run_flow("hello", name="Arthur")
        yield cli
