"""``FlowRunView.watch()`` and ``awatch()``: a flow run's events as they commit, over HTTP
(a graphql-transport-ws WebSocket) and embedded (the in-process schema), on both databases."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import uuid

import pytest

from sdk import FlowRunView
from sdk.exceptions import InvalidInput
from sdk.subscriptions import FlowRunEvent, flow_run_events
from tests.sdk.conftest import CountingClient, Recorder


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
