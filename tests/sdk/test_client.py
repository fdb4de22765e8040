"""The clients: documents checked against the schema, retries, errors, the API key."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from graphql import build_schema, validate

import sdk
from backend.settings import Settings
from backend.testing import ServerThread
from sdk import Client, documents
from sdk.client import MAX_WAIT_SECONDS
from sdk.exceptions import ClientError, InvalidInput, ServerError
from sdk.settings import SDKSettings
from tests.conftest import DatabaseFactory

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("document", documents.ALL, ids=lambda d: d.name)
def test_every_document_is_valid_against_the_committed_schema(
    document: documents.Document,
) -> None:
    schema = build_schema((ROOT / "schema.graphql").read_text())
    assert validate(schema, document.request.document) == []


def test_public_names() -> None:
    import inspect

    contract = {
        "flow",
        "task",
        "Flow",
        "State",
        "FlowRunView",
        "TaskRunView",
        "create_flow_run",
        "wait_for_flow_run",
        "get_task_run_result",
        "Client",
        "AsyncClient",
    }
    assert contract <= set(sdk.__all__)
    exported = {
        name
        for name, value in vars(sdk).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert sorted(sdk.__all__) == sorted(exported)


class Flaky:
    """Middleware: answers 503 to the first ``failures`` GraphQL requests, then lets them
    through to the real app; notes each request's Authorization header."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests: list[str | None] = []

    def __call__(self, app: Any) -> Any:
        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] == "/graphql":
                headers = dict(scope["headers"])
                self.requests.append(headers.get(b"authorization", b"").decode() or None)
                if len(self.requests) <= self.failures:
                    await send({"type": "http.response.start", "status": 503, "headers": []})
                    await send({"type": "http.response.body", "body": b"busy"})
                    return
            await app(scope, receive, send)

        return asgi


@pytest.fixture
def sqlite_url(databases: DatabaseFactory) -> str:
    return databases.new("sqlite")


def test_retries_a_read_through_503s_and_sends_the_api_key(sqlite_url: str) -> None:
    flaky = Flaky(failures=2)
    server = ServerThread(Settings(database_url=sqlite_url, run_services=False), flaky).start()
    try:
        client = Client(f"{server.url}/graphql", api_key="s3cret", retry_seconds=30)
        answer = client.execute(documents.CREATE_FLOW, {"input": {"name": "f"}})
        assert answer["create_flow"]["version"] == 1
        assert flaky.requests == ["Bearer s3cret"] * 3
        client.close()
    finally:
        server.stop()


def test_gives_up_after_its_budget_and_never_repeats_unsafe_writes(sqlite_url: str) -> None:
    flaky = Flaky(failures=10_000)
    server = ServerThread(Settings(database_url=sqlite_url, run_services=False), flaky).start()
    try:
        client = Client(f"{server.url}/graphql", retry_seconds=1.5)
        began = time.monotonic()
        with pytest.raises(ClientError, match="answered HTTP 503 to create_flow"):
            client.execute(documents.CREATE_FLOW, {"input": {"name": "f"}})
        assert 1.5 <= time.monotonic() - began < 1.5 + MAX_WAIT_SECONDS + 1
        sent = len(flaky.requests)
        assert sent >= 3  # retried, with waits that grow
        claim = {"input": {"limit": 1, "labels": []}}
        with pytest.raises(ClientError, match="answered HTTP 503 to claim_flow_runs"):
            client.execute(documents.CLAIM_FLOW_RUNS, claim)
        assert len(flaky.requests) == sent + 1  # sent once, never repeated
        client.close()
    finally:
        server.stop()


class LosesAnswers:
    """Middleware: the server does the work of the first ``count`` requests naming
    ``field``, then the answer is lost on its way back (502, as from a proxy)."""

    def __init__(self, field: bytes, count: int) -> None:
        self.field, self.count = field, count

    def __call__(self, app: Any) -> Any:
        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope["path"] != "/graphql":
                return await app(scope, receive, send)
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            replayed = False

            async def replay() -> dict[str, Any]:
                nonlocal replayed
                if replayed:
                    return {"type": "http.disconnect"}
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            if self.field not in body or self.count == 0:
                return await app(scope, replay, send)
            self.count -= 1

            async def swallow(message: dict[str, Any]) -> None:
                pass

            await app(scope, replay, swallow)  # done and committed; the answer goes nowhere
            await send({"type": "http.response.start", "status": 502, "headers": []})
            await send({"type": "http.response.body", "body": b"bad gateway"})

        return asgi


def test_a_proposal_whose_answer_was_lost_gets_its_first_answer(sqlite_url: str) -> None:
    """The retry is not a false REJECTED (stale version) and writes no second history row."""
    lossy = LosesAnswers(b"set_task_run_states", count=2)
    server = ServerThread(Settings(database_url=sqlite_url, run_services=False), lossy).start()
    try:
        client = Client(f"{server.url}/graphql", retry_seconds=30)
        client.execute(documents.CREATE_FLOW, {"input": {"name": "f"}})
        run = client.execute(
            documents.CREATE_FLOW_RUN, {"input": {"flow_name": "f", "pending": True}}
        )["create_flow_run"]
        client.execute(
            documents.SET_FLOW_RUN_STATES,
            {
                "input": {
                    "states": [
                        {"flow_run_id": run["id"], "version": 2, "state": {"type": "RUNNING"}}
                    ]
                }
            },
        )
        task_run = client.execute(
            documents.GET_OR_CREATE_TASK_RUN,
            {"input": {"flow_run_id": run["id"], "task_slug": "t"}},
        )["get_or_create_task_run"]
        proposal = {
            "task_run_id": task_run["id"],
            "version": 1,
            "state": {"type": "RUNNING"},
            "proposal_id": "0b7c2b7e-6d0e-4c4e-8f0a-7f4f3b0d9a11",
        }
        answer = client.execute(documents.SET_TASK_RUN_STATES, {"input": {"states": [proposal]}})
        [change] = answer["set_task_run_states"]["states"]
        assert (change["status"], change["state"]["name"]) == ("ACCEPTED", "Running")
        assert lossy.count == 0  # two answers were lost on the way
        history = client.execute(documents.TASK_RUN_HISTORY, {"id": task_run["id"]})
        states = [s["state"] for s in history["task_run_by_pk"]["states"]]
        assert states == ["Pending", "Running"]
        client.close()
    finally:
        server.stop()


def test_an_unreachable_server_is_a_client_error() -> None:
    client = Client("http://127.0.0.1:9/graphql", retry_seconds=0.5)
    with pytest.raises(ClientError, match="Cannot reach the runview server at 'http://127.0.0.1:9"):
        client.execute(
            documents.TASK_RUN_IDS, {"flow_run_id": "8e445d74-9ca6-425b-98e5-72754b7ea174"}
        )


@pytest.mark.server_faults
def test_refusals_and_faults(sqlite_url: str, tmp_path: Path) -> None:
    server = ServerThread(Settings(database_url=sqlite_url, run_services=False)).start()
    try:
        client = Client(f"{server.url}/graphql")
        with pytest.raises(InvalidInput, match="refused create_flow_run: flow 'nope' does not"):
            client.execute(documents.CREATE_FLOW_RUN, {"input": {"flow_name": "nope"}})
        with sqlite3.connect(sqlite_url.removeprefix("sqlite+aiosqlite:///")) as broken:
            broken.execute("DROP TABLE log")
        with pytest.raises(ServerError, match="failed on logs: Unexpected error."):
            client.execute(documents.LOGS, {"flow_run_id": "8e445d74-9ca6-425b-98e5-72754b7ea174"})
        client.close()
    finally:
        server.stop()


def test_clients_work_from_inside_an_event_loop(tmp_path: Path) -> None:
    settings = SDKSettings(home=tmp_path)

    async def main() -> tuple[Any, Any]:
        blocking = Client(settings=settings).execute(
            documents.CREATE_FLOW, {"input": {"name": "in-a-loop"}}
        )
        async with sdk.AsyncClient(settings=settings) as client:
            again = await client.execute(documents.CREATE_FLOW, {"input": {"name": "in-a-loop"}})
        return blocking, again

    first, second = asyncio.run(main())
    assert first == second
