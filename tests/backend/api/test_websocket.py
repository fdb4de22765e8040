"""Operations over a WebSocket (graphql-transport-ws) meet the checks HTTP requests meet.

A subscribe payload the HTTP checkpoint would refuse is answered with an ``error`` message
naming the value, and the connection serves on; each operation of a connection has its own
context, so it neither sees another's cached rows nor spends another's row budget; the
legacy graphql-ws protocol, which would skip those checks, is not spoken.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.backend.api.test_mutations import create_flow
from tests.conftest import Server


@contextlib.contextmanager
def session(server: Server) -> Iterator[ClientConnection]:
    url = server.url.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        yield ws


def answer(ws: ClientConnection, payload: Any, id: str = "1") -> dict[str, Any]:
    """The first message about operation ``id`` after subscribing with ``payload``."""
    ws.send(json.dumps({"id": id, "type": "subscribe", "payload": payload}))
    while True:
        message = json.loads(ws.recv(timeout=10))
        if message.get("id") == id:
            return dict(message)


DEEP: Any = {"name": "x"}
for _ in range(40):
    DEEP = {"_and": [DEEP]}


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ("{ flow { id } }", "The request body is a JSON string"),
        ({"query": 7}, "The request's query is 7; expected a string"),
        ({"query": "{ flow { id } }", "variables": []}, "variables is []; expected an object"),
        (
            {
                "query": "query ($w: flow_bool_exp) { flow(where: $w) { id } }",
                "variables": {"w": DEEP},
            },
            "variable $w is nested more than 32 levels deep",
        ),
        (
            {
                "query": "query ($n: String) { flow(where: {name: {_eq: $n}}) { id } }",
                "variables": {"n": "a\x00b"},
            },
            "NUL",
        ),
        ({"query": "query A { flow { id } } query B { flow { name } }"}, "operationName"),
    ],
    ids=["not an object", "query not text", "variables a list", "nested", "NUL", "two operations"],
)
def test_a_bad_subscribe_payload_is_an_error_message_and_the_connection_serves_on(
    server: Server, payload: Any, words: str
) -> None:
    create_flow(server, name="kept")
    with session(server) as ws:
        refused = answer(ws, payload)
        assert refused["type"] == "error", refused
        [error] = refused["payload"]
        assert error["extensions"]["code"] == "BAD_INPUT" and words in error["message"], error
        served = answer(ws, {"query": "{ flow { name } }"}, id="2")
        assert served == {
            "id": "2",
            "type": "next",
            "payload": {"data": {"flow": [{"name": "kept"}]}},
        }


def test_each_operation_of_a_connection_reads_afresh(database_url: str) -> None:
    """Batch loaders and the row budget belong to one operation, not to the connection."""
    server = Server(database_url).start(compiled_reads=False, max_answer_rows=3)
    try:
        create_flow(server, name="a")
        query = {"query": "{ flow_run { id } flow(order_by: {name: asc}) { name } }"}
        with session(server) as ws:
            first = answer(ws, query, id="1")
            create_flow(server, name="b")
            second = answer(ws, query, id="2")
            third = answer(ws, query, id="3")
        assert first["payload"]["data"]["flow"] == [{"name": "a"}]
        assert second["payload"]["data"]["flow"] == [{"name": "a"}, {"name": "b"}]
        assert third == second | {"id": "3"}
    finally:
        server.stop()


def test_the_legacy_graphql_ws_protocol_is_not_spoken(server: Server) -> None:
    url = server.url.replace("http://", "ws://") + "/graphql"
    with pytest.raises(ConnectionClosed) as closed:
        with connect(url, subprotocols=["graphql-ws"], open_timeout=10) as ws:  # type: ignore[list-item]
            ws.send(json.dumps({"type": "connection_init"}))
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None, closed.value
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
        4406,
        "Subprotocol not acceptable",
    )
