"""SDK fixtures: a client over HTTP to a real server, or embedded, on each database; and a
recorder that creates runs the way a runtime would, through the GraphQL mutations."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sdk import Agent, _loop, documents, transports
from sdk.client import Client
from sdk.documents import Document
from sdk.results import ResultStorage
from sdk.settings import SDKSettings
from tests.conftest import Server


@contextmanager
def agent_thread(client: Client, labels: Iterable[str] = ()) -> Iterator[Agent]:
    """A real agent polling in a thread of this process until the block ends."""
    agent = Agent(client=client, labels=labels, poll_interval=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=agent.start, args=(stop,), daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        stop.set()
        thread.join(timeout=30)


class CountingClient(Client):
    """A real client that also notes the name of every document it sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[str] = []

    async def _execute(
        self,
        document: Document,
        variables: dict[str, Any] | None,
        retry_seconds: float | None = None,
    ) -> Any:
        self.sent.append(document.name)
        return await super()._execute(document, variables, retry_seconds)


@pytest.fixture(params=["http", "embedded"])
def client(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> Iterator[CountingClient]:
    settings = SDKSettings(home=tmp_path / "home", database_url=database_url)
    if request.param == "http":
        server = Server(database_url).start()
        counting = CountingClient(f"{server.url}/graphql", settings=settings)
        yield counting
        counting.close()
        server.stop()
    else:
        counting = CountingClient(settings=settings)
        yield counting
        counting.close()
        embedded = transports._embedded.pop(database_url, None)
        if embedded is not None:
            _loop.run_sync(embedded.stop())


class Recorder:
    """Creates flows, runs and results through the mutations, as a runtime does."""

    def __init__(self, client: Client, storage: ResultStorage) -> None:
        self.client = client
        self.storage = storage

    def flow_run(self, flow_name: str = "flow", *, running: bool = True) -> str:
        self.client.execute(documents.CREATE_FLOW, {"input": {"name": flow_name}})
        key = str(uuid.uuid4())
        answer = self.client.execute(
            documents.CREATE_FLOW_RUN, {"input": {"flow_name": flow_name, "idempotency_key": key}}
        )
        run_id: str = answer["create_flow_run"]["id"]
        if running:
            self.propose_flow(run_id, 1, {"type": "RUNNING"})
        return run_id

    def propose_flow(self, run_id: str, version: int, state: dict[str, Any]) -> dict[str, Any]:
        proposal = {"flow_run_id": run_id, "version": version, "state": state}
        answer = self.client.execute(
            documents.SET_FLOW_RUN_STATES, {"input": {"states": [proposal]}}
        )
        change: dict[str, Any] = answer["set_flow_run_states"]["states"][0]
        assert change["status"] == "ACCEPTED", change
        return change

    def task_run(self, flow_run_id: str, slug: str, map_index: int = -1) -> str:
        answer = self.client.execute(
            documents.GET_OR_CREATE_TASK_RUN,
            {"input": {"flow_run_id": flow_run_id, "task_slug": slug, "map_index": map_index}},
        )
        return str(answer["get_or_create_task_run"]["id"])

    def propose(self, proposals: Sequence[tuple[str, int, dict[str, Any]]]) -> None:
        states = [{"task_run_id": i, "version": v, "state": s} for i, v, s in proposals]
        answer = self.client.execute(documents.SET_TASK_RUN_STATES, {"input": {"states": states}})
        for change in answer["set_task_run_states"]["states"]:
            assert change["status"] == "ACCEPTED", change

    def finish(self, flow_run_id: str, task_run_id: str, value: Any, *, slug: str = "") -> None:
        """Run and complete a task run, its result written to storage."""
        ref = self.storage.write(
            value, flow_run_id=flow_run_id, task_run_id=task_run_id, task_slug=slug
        )
        self.propose([(task_run_id, 1, {"type": "RUNNING"})])
        self.propose([(task_run_id, 2, {"type": "COMPLETED", "result": ref.to_dict()})])

    def mapped(self, flow_run_id: str, slug: str, values: Sequence[Any]) -> list[str]:
        """A mapped parent with one completed child per value; the children's ids."""
        parent = self.task_run(flow_run_id, slug)
        answer = self.client.execute(
            documents.GET_OR_CREATE_MAPPED_CHILDREN,
            {
                "input": {
                    "flow_run_id": flow_run_id,
                    "task_slug": slug,
                    "max_map_index": len(values) - 1,
                }
            },
        )
        children: list[str] = answer["get_or_create_mapped_task_run_children"]["ids"]
        completed = []
        for child, value in zip(children, values, strict=True):
            ref = self.storage.write(value, flow_run_id=flow_run_id, task_run_id=child)
            completed.append((child, 1, {"type": "COMPLETED", "result": ref.to_dict()}))
        # 1,000 proposals a request, as a runtime batches them.
        for start in range(0, len(completed), 1_000):
            self.propose(completed[start : start + 1_000])
        self.propose([(parent, 1, {"type": "RUNNING"})])
        self.propose([(parent, 2, {"type": "COMPLETED"})])
        return children


@pytest.fixture
def recorder(client: CountingClient, tmp_path: Path) -> Recorder:
    storage = ResultStorage(str(tmp_path / "results" / "{flow_run_id}" / "{task_run_id}"))
    return Recorder(client, storage)
