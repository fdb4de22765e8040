"""``FlowRunView.watch()`` and ``awatch()``: a flow run's events as they commit, over HTTP
(a graphql-transport-ws WebSocket) and embedded (the in-process schema), on both databases."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from backend.settings import Settings
from backend.testing import ServerThread
from sdk import FlowRunView, wait_for_flow_run
from sdk.client import default_client
from sdk.exceptions import InvalidInput
from sdk.results import ResultStorage
from sdk.subscriptions import FlowRunEvent, flow_run_events
from tests.conftest import DatabaseFactory
from tests.sdk.conftest import CountingClient, Recorder
from tests.sdk.test_composing import as_default, home  # noqa: F401 (fixtures)


def run_the_flow(recorder: Recorder, run_id: str, started: threading.Event) -> None:
    assert started.wait(30)
    task = recorder.task_run(run_id, "inc-1")
    recorder.propose([(task, 1, {"type": "RUNNING"})])
    recorder.propose([(task, 2, {"type": "COMPLETED", "message": "done"})])
    recorder.propose_flow(run_id, 2, {"type": "COMPLETED"})


def test_watch_gives_the_current_state_then_every_change_until_the_end(
    client: CountingClient, recorder: Recorder
) -> None:
    run_id = recorder.flow_run("watched")
    started = threading.Event()
    runner = threading.Thread(target=run_the_flow, args=(recorder, run_id, started))
    runner.start()
    seen: list[FlowRunEvent] = []
    for event in FlowRunView.from_flow_run_id(run_id, client=client).watch():
        seen.append(event)
        started.set()  # the first event is the current state: what follows is the stream
    runner.join(timeout=30)
    assert [(e.task_slug, e.state_type) for e in seen] == [
        (None, "RUNNING"),
        ("inc-1", "PENDING"),
        ("inc-1", "RUNNING"),
        ("inc-1", "COMPLETED"),
        (None, "COMPLETED"),
    ]
    first, done = seen[0], seen[3]
    assert first.flow_run_id == uuid.UUID(run_id) and first.task_run_id is None
    assert isinstance(done.task_run_id, uuid.UUID) and done.message == "done"
    assert all(isinstance(e.timestamp, dt.datetime) and e.timestamp.tzinfo for e in seen)


def test_awatch_streams_the_same_on_the_callers_loop(
    client: CountingClient, recorder: Recorder
) -> None:
    run_id = recorder.flow_run("watched")
    view = FlowRunView.from_flow_run_id(run_id, client=client)

    async def watch() -> list[str]:
        types = []
        async for event in view.awatch():
            types.append(event.state_type)
            if len(types) == 1:  # subscribed: the run moves on, from a worker thread
                asyncio.get_running_loop().run_in_executor(
                    None, recorder.propose_flow, run_id, 2, {"type": "FAILED"}
                )
        return types

    assert asyncio.run(asyncio.wait_for(watch(), 30)) == ["RUNNING", "FAILED"]


def test_watching_an_unknown_run_says_so(client: CountingClient) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        list(flow_run_events(client, uuid.uuid4()))


def finish_soon(recorder: Recorder, run_id: str, delay: float) -> threading.Thread:
    def finish() -> None:
        time.sleep(delay)
        recorder.propose_flow(run_id, 2, {"type": "COMPLETED"})

    thread = threading.Thread(target=finish)
    thread.start()
    return thread


@pytest.mark.usefixtures("as_default")
def test_wait_for_flow_run_wakes_when_the_run_ends_not_at_the_next_poll(
    client: CountingClient, recorder: Recorder
) -> None:
    run_id = recorder.flow_run("child")
    finisher = finish_soon(recorder, run_id, 0.5)
    started = time.monotonic()
    view = wait_for_flow_run(run_id, poll_interval=60, log_interval=60, timeout=30)
    waited = time.monotonic() - started
    finisher.join()
    assert view.state.is_completed()
    assert waited < 10, waited  # a poll would have come after 60 s


def _no_websockets(app: Any) -> Any:
    """A proxy that refuses every WebSocket, as some load balancers do."""

    async def proxy(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await app(scope, receive, send)

    return proxy


def test_wait_for_flow_run_polls_where_the_server_streams_nothing(
    databases: DatabaseFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ServerThread(Settings(database_url=databases.new("sqlite")), _no_websockets)
    server.start()
    monkeypatch.setenv("RUNVIEW_API_URL", f"{server.url}/graphql")
    monkeypatch.setenv("RUNVIEW_HOME", str(tmp_path))
    client = default_client()
    try:
        recorder = Recorder(client, ResultStorage(str(tmp_path / "{flow_run_id}")))
        run_id = recorder.flow_run("child")
        finisher = finish_soon(recorder, run_id, 0.3)
        view = wait_for_flow_run(run_id, poll_interval=0.1, log_interval=60, timeout=30)
        finisher.join()
        assert view.state.is_completed()
    finally:
        client.close()
        server.stop()
