"""``flow_run_events`` over graphql-transport-ws, against real servers on both databases.

The current state comes first, then every accepted change of the flow run and its task runs
in commit order, and the stream completes after the flow run's final state (with the task
runs that ended with it). A subscriber that joins mid-run gets the current state, then only
later changes; one on another replica over the same PostgreSQL sees a change within a
second; one that stops reading is closed with a reason while the server's memory stays flat.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.sync.client import ClientConnection, connect

from tests.backend.api.test_limits import rss_bytes
from tests.backend.api.test_mutations import create_flow, create_run, propose, task_run
from tests.conftest import Server

EVENTS = """subscription ($id: uuid!) {
  flow_run_events(flow_run_id: $id) {
    flow_run_id task_run_id task_slug map_index state state_type message timestamp version
  }
}"""
CHILDREN = """mutation ($input: get_or_create_mapped_task_run_children_input!) {
  get_or_create_mapped_task_run_children(input: $input) { ids } }"""


@contextlib.contextmanager
def subscribed(server: Server, run_id: str, id: str = "1") -> Iterator[ClientConnection]:
    url = server.url.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        payload = {"query": EVENTS, "variables": {"id": run_id}}
        ws.send(json.dumps({"id": id, "type": "subscribe", "payload": payload}))
        yield ws


class StalledReader:
    """A subscriber that stops reading: a raw socket with 4 KiB of receive buffer, which
    does the WebSocket handshake and subscribes by hand, then reads nothing until asked.
    (A client library keeps reading in the background into buffers of its own.)"""

    def __init__(self, server: Server, run_id: str) -> None:
        address = urllib.parse.urlsplit(server.url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect((address.hostname, address.port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /graphql HTTP/1.1\r\nHost: {address.netloc}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
            ).encode()
        )
        self.received = b""
        self.until(b"\r\n\r\n")
        assert self.received.startswith(b"HTTP/1.1 101"), self.received
        self.send({"type": "connection_init"})
        self.until(b"connection_ack")
        self.send(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": EVENTS, "variables": {"id": run_id}},
            }
        )
        self.until(b'"version"')  # the current state: subscribed

    def send(self, message: dict[str, Any]) -> None:
        frame = Frame(Opcode.TEXT, json.dumps(message).encode())
        self.sock.sendall(frame.serialize(mask=True, extensions=[]))

    def until(self, marker: bytes) -> None:
        """Read until ``marker`` has arrived (the server's frames are not masked)."""
        while marker not in self.received:
            chunk = self.sock.recv(65536)
            assert chunk, self.received[-500:]
            self.received = (self.received + chunk)[-(1 << 20) :]  # the last MiB will do

    def close(self) -> None:
        self.sock.close()


def next_event(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    message = json.loads(ws.recv(timeout=timeout))
    assert message["type"] == "next" and "errors" not in message["payload"], message
    return dict(message["payload"]["data"]["flow_run_events"])


def rest(ws: ClientConnection, timeout: float = 10) -> list[dict[str, Any]]:
    """Every event until the stream completes."""
    found = []
    while True:
        message = json.loads(ws.recv(timeout=timeout))
        if message["type"] == "complete":
            return found
        assert message["type"] == "next" and "errors" not in message["payload"], message
        found.append(message["payload"]["data"]["flow_run_events"])


def states(events: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
    return [(e["task_slug"], e["state_type"]) for e in events]


def started_run(server: Server) -> str:
    create_flow(server, name="watched")
    return create_run(server, flow_name="watched")


def test_the_current_state_then_every_change_in_order_then_complete(server: Server) -> None:
    run = started_run(server)
    with subscribed(server, run) as ws:
        first = next_event(ws)
        assert first["flow_run_id"] == run and first["task_run_id"] is None
        assert (first["state_type"], first["version"]) == ("SCHEDULED", 1)
        propose(server, "flow", run, 1, type="RUNNING")
        task = task_run(server, flow_run_id=run, task_slug="inc-1")["id"]
        propose(server, "task", task, 1, type="RUNNING")
        propose(server, "task", task, 2, type="COMPLETED", message="done")
        events = [next_event(ws) for _ in range(4)]
        assert states(events) == [
            (None, "RUNNING"),
            ("inc-1", "PENDING"),
            ("inc-1", "RUNNING"),
            ("inc-1", "COMPLETED"),
        ]
        done = events[-1]
        assert (done["task_run_id"], done["map_index"], done["message"]) == (task, -1, "done")
        propose(server, "flow", run, 2, type="COMPLETED")
        last = rest(ws)
    assert states(last) == [(None, "COMPLETED")]
    assert last[0]["version"] == 3 and last[0]["timestamp"]


def test_a_subscriber_joining_mid_run_gets_the_current_state_then_later_changes(
    server: Server,
) -> None:
    run = started_run(server)
    propose(server, "flow", run, 1, type="RUNNING")
    early = task_run(server, flow_run_id=run, task_slug="early-1")["id"]
    propose(server, "task", early, 1, type="RUNNING")
    with subscribed(server, run) as ws:
        first = next_event(ws)
        assert (first["task_run_id"], first["state_type"], first["version"]) == (None, "RUNNING", 2)
        propose(server, "task", early, 2, type="COMPLETED")
        assert states([next_event(ws)]) == [("early-1", "COMPLETED")]
        # The flow run ends, and its unfinished task run ends with it, in one transaction:
        # the stream completes after both.
        late = task_run(server, flow_run_id=run, task_slug="late-1")["id"]
        propose(server, "task", late, 1, type="RUNNING")
        assert states([next_event(ws), next_event(ws)]) == [
            ("late-1", "PENDING"),
            ("late-1", "RUNNING"),
        ]
        propose(server, "flow", run, 2, type="FAILED", message="boom")
        assert states(rest(ws)) == [(None, "FAILED"), ("late-1", "CRASHED")]


def test_a_finished_run_sends_its_state_and_completes(server: Server) -> None:
    run = started_run(server)
    propose(server, "flow", run, 1, type="CANCELLED")
    with subscribed(server, run) as ws:
        assert states([next_event(ws)]) == [(None, "CANCELLED")]
        assert rest(ws) == []
    with subscribed(server, run) as ws:  # and again: a reconnecting client gets the same
        assert states([next_event(ws)]) == [(None, "CANCELLED")]
        assert rest(ws) == []


def test_an_unknown_flow_run_is_an_error(server: Server) -> None:
    with subscribed(server, "00000000-0000-4000-8000-000000000009") as ws:
        message = json.loads(ws.recv(timeout=10))
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert "does not exist" in errors[0]["message"], message


def test_mapped_children_arrive_as_one_transaction(server: Server) -> None:
    run = started_run(server)
    propose(server, "flow", run, 1, type="RUNNING")
    parent = task_run(server, flow_run_id=run, task_slug="inc-1")["id"]
    with subscribed(server, run) as ws:
        next_event(ws)
        arguments = {"flow_run_id": run, "task_slug": "inc-1", "max_map_index": 499}
        server.data(CHILDREN, {"input": arguments})
        children = [next_event(ws) for _ in range(500)]
    assert sorted(c["map_index"] for c in children) == list(range(500))
    assert {c["state_type"] for c in children} == {"PENDING"}
    assert parent not in {c["task_run_id"] for c in children}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_change_through_one_replica_reaches_a_subscriber_on_another(server: Server) -> None:
    other = Server(server.database_url).start()
    try:
        run = started_run(server)
        latencies = []
        with subscribed(other, run) as ws:
            next_event(ws)
            for version in range(1, 11):
                kind = "RUNNING" if version % 2 else "PAUSED"
                started = time.perf_counter()
                propose(server, "flow", run, version, type=kind)
                event = next_event(ws, timeout=5)
                latencies.append(time.perf_counter() - started)
                assert (event["state_type"], event["version"]) == (kind, version + 1)
        assert max(latencies) < 1.0, latencies
    finally:
        other.stop()


def test_a_subscriber_that_stops_reading_is_closed_and_memory_stays_flat(
    database_url: str,
) -> None:
    server = Server(database_url).start(subscription_buffer=3)
    try:
        run = started_run(server)
        propose(server, "flow", run, 1, type="RUNNING")
        for i in range(12):
            task_run(server, flow_run_id=run, task_slug=f"t{i}-1")
        reader = StalledReader(server, run)
        before = rss_bytes()
        # Twelve transactions of 2,000 events each (8 MB of messages), none read: the
        # socket's buffers fill, the subscription stops taking events, and its buffer of
        # three transactions overflows.
        for i in range(12):
            arguments = {"flow_run_id": run, "task_slug": f"t{i}-1", "max_map_index": 1_999}
            server.data(CHILDREN, {"input": arguments})
        time.sleep(0.5)
        grown = rss_bytes() - before
        reader.until(b"SUBSCRIPTION_CLOSED")
        reader.until(b"RUNVIEW_SUBSCRIPTION_BUFFER")
        reader.close()
        assert grown < 100 * 2**20, grown
        # The server serves on, and a new subscription starts from the current state.
        with subscribed(server, run) as again:
            assert next_event(again)["state_type"] == "RUNNING"
    finally:
        server.stop()


def test_subscribers_are_counted_per_connection(database_url: str) -> None:
    server = Server(database_url).start(max_subscriptions_per_connection=2)
    try:
        run = started_run(server)
        with subscribed(server, run, id="1") as ws:
            next_event(ws)
            payload = {"query": EVENTS, "variables": {"id": run}}
            for id in ("2", "3"):
                ws.send(json.dumps({"id": id, "type": "subscribe", "payload": payload}))
            answers = {}
            while len(answers) < 2:
                message = json.loads(ws.recv(timeout=10))
                answers.setdefault(message["id"], message)
        assert answers["2"]["type"] == "next"
        assert answers["3"]["type"] == "error", answers
    finally:
        server.stop()


def test_two_subscribers_of_one_run_each_get_every_event(server: Server) -> None:
    run = started_run(server)
    got: dict[int, list[tuple[str | None, str]]] = {}
    ready = threading.Barrier(3, timeout=20)

    def follow(index: int) -> None:
        with subscribed(server, run) as ws:
            first = next_event(ws)
            ready.wait()
            got[index] = states([first, *rest(ws, timeout=20)])

    followers = [threading.Thread(target=follow, args=(i,)) for i in range(2)]
    for follower in followers:
        follower.start()
    ready.wait()  # both have the current state: what follows is the stream
    propose(server, "flow", run, 1, type="RUNNING")
    propose(server, "flow", run, 2, type="COMPLETED")
    for follower in followers:
        follower.join(timeout=30)
    expected = [(None, "SCHEDULED"), (None, "RUNNING"), (None, "COMPLETED")]
    assert got == {0: expected, 1: expected}


LOGS = """subscription ($id: uuid!, $level: Int) {
  flow_run_logs(flow_run_id: $id, level: $level) { level name message task_run_id }
}"""
WRITE_LOGS = (
    "mutation ($logs: [run_log_input!]!) { write_run_logs(input: {logs: $logs}) { count } }"
)


def test_logs_arrive_as_written_from_their_level_and_complete_with_the_run(
    server: Server,
) -> None:
    run = started_run(server)
    propose(server, "flow", run, 1, type="RUNNING")
    url = server.url.replace("http://", "ws://") + "/graphql"

    def write(*levels: int, message: str = "at") -> None:
        records = [
            {
                "flow_run_id": run,
                "level": level,
                "name": "flow",
                "message": f"{message} {level}",
                "timestamp": f"2026-12-01T12:00:{i:02}+00:00",  # a batch arrives in this order
            }
            for i, level in enumerate(levels)
        ]
        assert server.data(WRITE_LOGS, {"logs": records})["write_run_logs"]["count"] == len(levels)

    def received(timeout: float = 10) -> dict[str, Any]:
        message = json.loads(ws.recv(timeout=timeout))
        assert message["type"] == "next", message
        return dict(message["payload"]["data"]["flow_run_logs"])

    write(40)  # before the subscription: not streamed
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        payload = {"query": LOGS, "variables": {"id": run, "level": 30}}
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        # No first message says it is subscribed: a record is written until one arrives.
        for _ in range(50):
            write(30, message="ready")
            with contextlib.suppress(TimeoutError):
                if received(timeout=0.2)["message"] == "ready 30":
                    break
        write(10, 30, 20, 50)
        propose(server, "flow", run, 2, type="COMPLETED")
        messages = []
        while (message := json.loads(ws.recv(timeout=10)))["type"] != "complete":
            messages.append(message["payload"]["data"]["flow_run_logs"])
    messages = [m for m in messages if not m["message"].startswith("ready")]
    assert [m["message"] for m in messages] == ["at 30", "at 50"]
    assert {m["name"] for m in messages} == {"flow"}


RUNS_EVENTS = """subscription ($where: flow_run_bool_exp) {
  flow_runs_events(where: $where) { flow_run_id task_run_id state_type version }
}"""


def test_flow_runs_events_streams_the_states_of_matching_runs(server: Server) -> None:
    for name in ("a", "b"):
        create_flow(server, name=name)
    url = server.url.replace("http://", "ws://") + "/graphql"
    where = {"flow": {"name": {"_eq": "a"}}}
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        payload = {"query": RUNS_EVENTS, "variables": {"where": where}}
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))

        def received(timeout: float = 10) -> dict[str, Any]:
            message = json.loads(ws.recv(timeout=timeout))
            assert message["type"] == "next", message
            return dict(message["payload"]["data"]["flow_runs_events"])

        # No first message says it is subscribed: runs are made until one is announced.
        for _ in range(50):
            create_run(server, flow_name="a")
            with contextlib.suppress(TimeoutError):
                received(timeout=0.2)
                break
        with contextlib.suppress(TimeoutError):
            while True:
                received(timeout=0.5)  # the other ready runs' Scheduled states
        a_run, b_run = create_run(server, flow_name="a"), create_run(server, flow_name="b")
        propose(server, "flow", b_run, 1, type="RUNNING")
        propose(server, "flow", a_run, 1, type="RUNNING")
        task = task_run(server, flow_run_id=a_run, task_slug="t-1")["id"]  # a task run's: not
        propose(server, "task", task, 1, type="RUNNING")
        propose(server, "flow", a_run, 2, type="COMPLETED")
        seen = [received() for _ in range(3)]
    assert [(e["flow_run_id"], e["state_type"], e["version"]) for e in seen] == [
        (a_run, "SCHEDULED", 1),
        (a_run, "RUNNING", 2),
        (a_run, "COMPLETED", 3),
    ]
    assert {e["task_run_id"] for e in seen} == {None}


def test_flow_runs_events_refuses_a_bad_filter_at_once(server: Server) -> None:
    url = server.url.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        payload = {"query": RUNS_EVENTS, "variables": {"where": {"name": {"_like": 7}}}}
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        message = json.loads(ws.recv(timeout=10))
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert "7" in errors[0]["message"], message


def test_flow_runs_events_without_a_filter_streams_every_flow_run(server: Server) -> None:
    for name in ("a", "b"):
        create_flow(server, name=name)
    url = server.url.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": RUNS_EVENTS}}))

        def received(timeout: float = 10) -> dict[str, Any]:
            message = json.loads(ws.recv(timeout=timeout))
            assert message["type"] == "next", message
            return dict(message["payload"]["data"]["flow_runs_events"])

        for _ in range(50):  # runs are made until one is announced: subscribed
            create_run(server, flow_name="a")
            with contextlib.suppress(TimeoutError):
                received(timeout=0.2)
                break
        with contextlib.suppress(TimeoutError):
            while True:
                received(timeout=0.5)
        runs = {create_run(server, flow_name=name) for name in ("a", "b")}
        seen = {(e["flow_run_id"], e["state_type"]) for e in (received(), received())}
    assert seen == {(run, "SCHEDULED") for run in runs}
