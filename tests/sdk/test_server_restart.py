"""A flow rides through its server being killed (-9) and restarted on the same port.

The server is a real ``runview server start`` subprocess over PostgreSQL; the flow runs in
this process against it over HTTP. Whatever the kill interrupts — a batch of proposals
accepted but not answered, a batch of log records, a heartbeat — the client sends again
once the server is back, and the server answers what it already did as it did the first
time: every child ends with exactly one Running and one Completed row in its history.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from sdk import flow, task
from tests.conftest import DatabaseFactory, unused_port

CHILDREN = 1_000


@contextmanager
def _server(database_url: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "RUNVIEW_DATABASE_URL": database_url, "RUNVIEW_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "sdk.cli", "server", "start"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the runview server did not start")
            time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_a_mapped_flow_survives_a_server_kill_and_restart(
    databases: DatabaseFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_url = databases.new("postgresql")
    engine = sa.create_engine(database_url)  # psycopg 3 speaks both sync and async
    port = unused_port()
    monkeypatch.setenv("RUNVIEW_API_URL", f"http://127.0.0.1:{port}/graphql")

    @task
    def square(x: int) -> int:
        time.sleep(0.01)
        return x * x

    @flow
    def squares(n: int) -> Any:
        return square.map(range(n))

    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["state"] = squares(CHILDREN, return_state=True)
        except BaseException as error:  # the test says what went wrong
            outcome["error"] = error

    def completed() -> int:
        with engine.connect() as conn:
            return (
                conn.scalar(sa.text("SELECT count(*) FROM task_run WHERE state = 'Completed'")) or 0
            )

    with _server(database_url, port) as first:
        runner = threading.Thread(target=run, daemon=True)
        runner.start()
        deadline = time.monotonic() + 120
        while completed() < CHILDREN // 4:
            assert runner.is_alive(), outcome
            assert time.monotonic() < deadline, "the flow made no progress"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    killed_at = completed()
    assert killed_at < CHILDREN, "the flow finished before the kill; make its tasks slower"
    time.sleep(1.0)  # the clients see connection refused for a while
    with _server(database_url, port):
        runner.join(timeout=180)
        assert not runner.is_alive(), "the flow did not finish after the restart"

    assert "error" not in outcome, outcome["error"]
    state = outcome["state"]
    assert state.name == "Completed", state
    assert state.result() == [x * x for x in range(CHILDREN)]
    with engine.connect() as conn:
        per_child = conn.execute(
            sa.text(
                """SELECT r.map_index,
                          count(*) FILTER (WHERE s.state = 'Running'),
                          count(*) FILTER (WHERE s.state = 'Completed')
                   FROM task_run r JOIN task_run_state s ON s.task_run_id = r.id
                   WHERE r.map_index >= 0 GROUP BY r.map_index"""
            )
        ).all()
        unfinished = conn.scalar(
            sa.text(
                """SELECT count(*) FROM (SELECT state_type FROM flow_run UNION ALL
                   SELECT state_type FROM task_run) runs WHERE state_type <> 'COMPLETED'"""
            )
        )
    engine.dispose()
    assert len(per_child) == CHILDREN
    assert {(running, done) for _, running, done in per_child} == {(1, 1)}
    assert unfinished == 0


def test_a_flow_cut_off_past_its_budget_ends_failed_once_the_server_is_back(
    databases: DatabaseFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server is gone for longer than the client retries: the task cannot report its
    end, the flow fails with that reason, and its final state is recorded as soon as the
    server is back; the task run it could not end is ended with it, not left Running."""
    database_url = databases.new("postgresql")
    port = unused_port()
    monkeypatch.setenv("RUNVIEW_API_URL", f"http://127.0.0.1:{port}/graphql")
    monkeypatch.setenv("RUNVIEW_CLIENT_RETRY_SECONDS", "1")
    running = threading.Event()

    @task
    def slow() -> int:
        running.set()
        time.sleep(1.0)
        return 1

    @flow
    def cut_off() -> int:
        return slow()

    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["state"] = cut_off(return_state=True)
        except BaseException as error:  # the test says what went wrong
            outcome["error"] = error

    with _server(database_url, port) as first:
        runner = threading.Thread(target=run, daemon=True)
        runner.start()
        assert running.wait(30), outcome
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    time.sleep(4.0)  # the task's Completed fails after its 1 s budget; the flow fails
    assert runner.is_alive(), "the flow gave up on its final state while the server was away"
    with _server(database_url, port):
        runner.join(timeout=60)
        assert not runner.is_alive(), "the flow did not end after the server came back"
    assert "error" not in outcome, outcome["error"]
    state = outcome["state"]
    assert state.name == "Failed"
    assert "Cannot reach the runview server" in state.message
    assert "retried for 1 s" in state.message
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT 'flow', state, state_message FROM flow_run UNION ALL"
                " SELECT 'task', state, state_message FROM task_run"
            )
        ).all()
    engine.dispose()
    runs = {kind: (name, message) for kind, name, message in rows}
    assert runs["flow"] == ("Failed", state.message)
    assert runs["task"] == ("Crashed", "Its flow run ended Failed before this task run did.")
