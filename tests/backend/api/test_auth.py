"""API keys over real HTTP and WebSockets: who gets in, and what each scope may do.

A server with ``RUNVIEW_AUTH=required`` over a database of this module's own, with one live
key per scope and one revoked key. Every mutation is tried with every scope: read keys are
refused all of them (403, nothing written), write keys all but ``delete_flow_run``, admin
keys none.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from backend.database.engine import Database
from backend.models import api_keys
from tests.conftest import BACKENDS, DatabaseFactory, Server, run, unused_port
from tests.snapshot import Snapshot

SCOPES = ("read", "write", "admin")


class Secured:
    """The server, its database URL and a token per scope (plus a revoked one)."""

    def __init__(self, server: Server, tokens: dict[str, str]) -> None:
        self.server = server
        self.tokens = tokens

    def post(self, body: Any, token: str | None = None, **headers: str) -> httpx.Response:
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        return httpx.post(f"{self.server.url}/graphql", json=body, headers=headers, timeout=30)

    def as_admin(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.post({"query": query, "variables": variables}, self.tokens["admin"])
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        return body["data"]


async def _make_keys(url: str) -> dict[str, str]:
    db = Database(url)
    try:
        async with db.begin() as conn:
            tokens = {s: (await api_keys.create_api_key(conn, s, s))[1] for s in SCOPES}
            _, tokens["revoked"] = await api_keys.create_api_key(conn, "old", "admin")
            await api_keys.revoke_api_key(conn, "old")
        return tokens
    finally:
        await db.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def secured(request: pytest.FixtureRequest, databases: DatabaseFactory) -> Iterator[Secured]:
    url = databases.new(request.param)
    tokens = run(_make_keys(url))
    server = Server(url).start(auth="required", auth_cache_seconds=0)
    yield Secured(server, tokens)
    server.stop()


def fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Every table's row count and a hash of its rows."""
    snapshot = Snapshot(url)
    try:
        return snapshot()
    finally:
        snapshot.engine.dispose()


def _flow_run(secured: Secured) -> dict[str, Any]:
    """A fresh Running flow run with one Running task run, made with the admin key."""
    name = f"f-{uuid.uuid4().hex[:8]}"
    secured.as_admin(
        'mutation ($n: String!) { create_flow(input: {name: $n, tasks: [{slug: "t", name:'
        ' "t"}]}) { id } }',
        {"n": name},
    )
    flow_run = secured.as_admin(
        "mutation ($n: String!) { create_flow_run(input: {flow_name: $n, pending: true}) { id } }",
        {"n": name},
    )["create_flow_run"]
    secured.as_admin(
        "mutation ($id: uuid!) { set_flow_run_states(input: {states: [{flow_run_id: $id,"
        ' version: 1, state: {type: "RUNNING"}}]}) { states { status } } }',
        {"id": flow_run["id"]},
    )
    task_run = secured.as_admin(
        'mutation ($id: uuid!) { get_or_create_task_run(input: {flow_run_id: $id, task_slug: "t"})'
        " { id version } }",
        {"id": flow_run["id"]},
    )["get_or_create_task_run"]
    return {"flow_name": name, "flow_run_id": flow_run["id"], "task_run_id": task_run["id"]}


# Every mutation, as (name, document builder over a fresh flow run's ids).
MUTATIONS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("create_flow", lambda r: 'mutation { create_flow(input: {name: "new"}) { id } }'),
    (
        "create_flow_run",
        lambda r: (
            f'mutation {{ create_flow_run(input: {{flow_name: "{r["flow_name"]}"}}) {{ id }} }}'
        ),
    ),
    (
        "set_flow_run_states",
        lambda r: (
            "mutation { set_flow_run_states(input: {states: [{flow_run_id:"
            f' "{r["flow_run_id"]}", version: 2, state: {{type: "COMPLETED"}}}}]}})'
            " { states { status } } }"
        ),
    ),
    (
        "cancel_flow_run",
        lambda r: (
            f'mutation {{ cancel_flow_run(input: {{flow_run_id: "{r["flow_run_id"]}"}})'
            " { __typename } }"
        ),
    ),
    (
        "delete_flow_run",
        lambda r: (
            f'mutation {{ delete_flow_run(input: {{flow_run_id: "{r["flow_run_id"]}"}})'
            " { __typename } }"
        ),
    ),
    (
        "update_flow_run_heartbeat",
        lambda r: (
            "mutation { update_flow_run_heartbeat(input: {flow_run_id:"
            f' "{r["flow_run_id"]}"}}) {{ __typename }} }}'
        ),
    ),
    ("claim_flow_runs", lambda r: "mutation { claim_flow_runs(input: {}) { __typename } }"),
    (
        "get_or_create_task_run",
        lambda r: (
            "mutation { get_or_create_task_run(input: {flow_run_id:"
            f' "{r["flow_run_id"]}", task_slug: "t", map_index: 7}}) {{ id }} }}'
        ),
    ),
    (
        "get_or_create_mapped_task_run_children",
        lambda r: (
            "mutation { get_or_create_mapped_task_run_children(input: {flow_run_id:"
            f' "{r["flow_run_id"]}", task_slug: "t", max_map_index: 2}}) {{ __typename }} }}'
        ),
    ),
    (
        "set_task_run_states",
        lambda r: (
            "mutation { set_task_run_states(input: {states: [{task_run_id:"
            f' "{r["task_run_id"]}", version: 1, state: {{type: "RUNNING"}}}}]}})'
            " { states { status } } }"
        ),
    ),
    (
        "update_task_run_heartbeat",
        lambda r: (
            "mutation { update_task_run_heartbeat(input: {task_run_id:"
            f' "{r["task_run_id"]}"}}) {{ __typename }} }}'
        ),
    ),
    (
        "write_run_logs",
        lambda r: (
            "mutation { write_run_logs(input: {logs: [{flow_run_id:"
            f' "{r["flow_run_id"]}", level: 20, name: "n", message: "m"}}]}}) {{ __typename }} }}'
        ),
    ),
]


def test_every_mutation_is_in_the_matrix(secured: Secured) -> None:
    data = secured.as_admin("{ __schema { mutationType { fields { name } } } }")
    names = {field["name"] for field in data["__schema"]["mutationType"]["fields"]}
    assert names == {name for name, _ in MUTATIONS}


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize(("mutation", "document"), MUTATIONS, ids=[m for m, _ in MUTATIONS])
def test_each_scope_runs_only_the_mutations_it_covers(
    secured: Secured, scope: str, mutation: str, document: Callable[[dict[str, Any]], str]
) -> None:
    ids = _flow_run(secured)
    needed = "admin" if mutation == "delete_flow_run" else "write"
    if api_keys.covers(scope, needed):
        response = secured.post({"query": document(ids)}, secured.tokens[scope])
        body = response.json()
        assert response.status_code == 200, body
        assert "errors" not in body, body
        assert body["data"][mutation] is not None
        return
    before = fingerprint(secured.server.database_url)
    response = secured.post({"query": document(ids)}, secured.tokens[scope])
    body = response.json()
    assert response.status_code == 403, body
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert f"scope {scope!r}" in error["message"] and repr(needed) in error["message"]
    assert fingerprint(secured.server.database_url) == before


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({}, "requires an API key"),
        ({"authorization": "Bearer rv_not-a-key"}, "'rv_not-a…' is unknown or revoked"),
        ({"authorization": "Basic dXNlcjpwYXNz"}, "is not `Bearer <key>`"),
        ({"authorization": "Bearer"}, "is not `Bearer <key>`"),
    ],
    ids=["no key", "wrong key", "another scheme", "empty bearer"],
)
def test_a_request_without_a_live_key_gets_401_and_no_data(
    secured: Secured, headers: dict[str, str], words: str
) -> None:
    before = fingerprint(secured.server.database_url)
    for body in (
        {"query": "{ flow_run { id name } }"},
        {"query": 'mutation { create_flow(input: {name: "intruder"}) { id } }'},
    ):
        response = secured.post(body, **headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        answer = response.json()
        assert "data" not in answer
        [error] = answer["errors"]
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
        assert words in error["message"]
        # Refused before the endpoint, but with a request id all the same.
        assert error["extensions"]["request_id"] == response.headers["x-request-id"]
    assert fingerprint(secured.server.database_url) == before


def test_a_revoked_key_gets_401(secured: Secured) -> None:
    response = secured.post({"query": "{ flow { id } }"}, secured.tokens["revoked"])
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_a_get_query_needs_a_key_too(secured: Secured) -> None:
    url = f"{secured.server.url}/graphql"
    params = {"query": "{ flow { id } }"}
    assert httpx.get(url, params=params).status_code == 401
    answer = httpx.get(
        url, params=params, headers={"authorization": f"Bearer {secured.tokens['read']}"}
    )
    assert answer.status_code == 200 and "data" in answer.json()


@pytest.mark.parametrize("scope", SCOPES)
def test_every_scope_reads_on_the_compiled_path_and_the_executor(
    secured: Secured, scope: str
) -> None:
    ids = _flow_run(secured)
    token = secured.tokens[scope]
    compiled = secured.post(
        {
            "query": "query ($id: uuid!) { flow_run_by_pk(id: $id) { id } }",
            "variables": {"id": ids["flow_run_id"]},
        },
        token,
    ).json()
    assert compiled == {"data": {"flow_run_by_pk": {"id": ids["flow_run_id"]}}}
    introspection = secured.post({"query": "{ __typename }"}, token).json()
    assert introspection == {"data": {"__typename": "Query"}}


def test_a_read_key_cannot_reach_the_compiled_states_path(secured: Secured) -> None:
    """The compiled path for proposals skips keys without write scope: the executor refuses."""
    ids = _flow_run(secured)
    before = fingerprint(secured.server.database_url)
    response = secured.post(
        {
            "query": "mutation ($s: [task_run_state_proposal!]!) {"
            " set_task_run_states(input: {states: $s}) { states { status } } }",
            "variables": {
                "s": [
                    {"task_run_id": ids["task_run_id"], "version": 1, "state": {"type": "RUNNING"}}
                ]
            },
        },
        secured.tokens["read"],
    )
    assert response.status_code == 403
    assert fingerprint(secured.server.database_url) == before


def test_a_mutation_behind_a_fragment_is_judged_by_its_fields(secured: Secured) -> None:
    ids = _flow_run(secured)
    document = (
        "mutation { ...Delete } fragment Delete on Mutation {"
        f' delete_flow_run(input: {{flow_run_id: "{ids["flow_run_id"]}"}}) {{ __typename }} }}'
    )
    response = secured.post({"query": document}, secured.tokens["write"])
    assert response.status_code == 403
    assert "needs 'admin'" in response.json()["errors"][0]["message"]


def test_health_and_the_playground_need_no_key(secured: Secured) -> None:
    url = secured.server.url
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    page = httpx.get(f"{url}/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "<html" in page.text.lower()


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.nip.io:4200", "", "[::2]"])
def test_a_foreign_host_header_is_refused(secured: Secured, host: str) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not be answered."""
    response = secured.post({"query": "{ flow { id } }"}, secured.tokens["admin"], host=host)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_HOST"
    assert repr(host) in error["message"] and "RUNVIEW_ALLOWED_HOSTS" in error["message"]
    assert error["extensions"]["request_id"] == response.headers["x-request-id"]


def test_loopback_names_are_answered(secured: Secured) -> None:
    port = secured.server.url.rsplit(":", 1)[1]
    for host in ("localhost", f"localhost:{port}", f"127.0.0.1:{port}", "[::1]"):
        response = secured.post({"query": "{ flow { id } }"}, secured.tokens["read"], host=host)
        assert response.status_code == 200, (host, response.text)


def _ws(secured: Secured) -> Any:
    url = secured.server.url.replace("http://", "ws://") + "/graphql"
    return connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10)  # type: ignore[list-item]


@pytest.mark.parametrize(
    "payload",
    [None, {}, {"Authorization": "Bearer rv_nope"}, {"Authorization": 7}, "not a dict"],
    ids=["no payload", "empty", "wrong key", "not text", "not an object"],
)
def test_a_websocket_without_a_live_key_is_closed_at_init(secured: Secured, payload: Any) -> None:
    with _ws(secured) as ws:
        message: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            message["payload"] = payload
        ws.send(json.dumps(message))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code in (4400, 4403)


def _ws_operation(secured: Secured, token: str, query: str) -> dict[str, Any]:
    with _ws(secured) as ws:
        ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        return json.loads(ws.recv(timeout=10))


def test_a_websocket_with_a_key_runs_what_its_scope_covers(secured: Secured) -> None:
    answer = _ws_operation(secured, secured.tokens["read"], "{ flow { __typename } }")
    assert answer["type"] == "next" and "errors" not in answer["payload"], answer
    refused = _ws_operation(
        secured, secured.tokens["read"], 'mutation { create_flow(input: {name: "ws"}) { id } }'
    )
    assert refused["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN", refused


def test_a_revoked_key_stops_working_within_the_cache_time(
    databases: DatabaseFactory,
) -> None:
    url = databases.new("sqlite")
    tokens = run(_make_keys(url))
    server = Server(url).start(auth="required", auth_cache_seconds=1)
    try:

        def status() -> int:
            return httpx.post(
                f"{server.url}/graphql",
                json={"query": "{ flow { id } }"},
                headers={"authorization": f"Bearer {tokens['read']}"},
            ).status_code

        assert status() == 200

        async def revoke() -> None:
            db = Database(url)
            async with db.begin() as conn:
                await api_keys.revoke_api_key(conn, "read")
            await db.dispose()

        run(revoke())
        revoked_at = time.monotonic()
        while status() == 200:
            assert time.monotonic() - revoked_at < 1.5, "still accepted after the cache time"
            time.sleep(0.05)
    finally:
        server.stop()


def test_auth_is_off_on_loopback_unless_required(databases: DatabaseFactory) -> None:
    server = Server(databases.new("sqlite")).start()
    try:
        assert server.data("{ flow { id } }") == {"flow": []}
    finally:
        server.stop()


def test_a_key_cannot_be_checked_while_the_database_is_down() -> None:
    """No database to look the key up in: 503 with Retry-After, as every other request."""
    nowhere = f"postgresql+psycopg://postgres@127.0.0.1:{unused_port()}/none"
    server = Server(nowhere).start(auth="required", upgrade_on_start=False)
    try:
        response = httpx.post(
            f"{server.url}/graphql",
            json={"query": "{ flow { id } }"},
            headers={"authorization": "Bearer rv_some-key"},
            timeout=30,
        )
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"]
    finally:
        server.stop()
