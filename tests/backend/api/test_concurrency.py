"""Races between real clients over HTTP: optimistic versions hold under concurrency.

The clients spread over four server replicas (each its own uvicorn and event loop, in its
own thread) over one database, as in production behind a load balancer: one server's event
loop alone tends to serialize the requests and would hide a missing row lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.backend.api.test_mutations import SET_FLOW, create_flow, create_run, history
from tests.conftest import Server


@pytest.fixture
def replicas(server: Server) -> Iterator[list[Server]]:
    others = [Server(server.database_url).start() for _ in range(3)]
    yield [server, *others]
    for other in others:
        other.stop()


@pytest.mark.anyio
async def test_twenty_clients_propose_running_with_one_version_and_one_wins(
    server: Server, replicas: list[Server]
) -> None:
    create_flow(server, name="race")
    run = create_run(server, flow_name="race")
    proposal = {"states": [{"flow_run_id": run, "version": 1, "state": {"type": "RUNNING"}}]}

    async def client(http: httpx.AsyncClient, replica: Server) -> dict[str, Any]:
        response = await http.post(
            f"{replica.url}/graphql", json={"query": SET_FLOW, "variables": proposal}
        )
        body = response.json()
        assert "errors" not in body, body
        return body["data"]["set_flow_run_states"]["states"][0]

    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        answers = await asyncio.gather(*(client(http, replicas[i % 4]) for i in range(20)))
    statuses = sorted(answer["status"] for answer in answers)
    assert statuses == ["ACCEPTED"] + ["REJECTED"] * 19
    assert all(answer["state"]["name"] == "Running" for answer in answers)
    assert history(server, "flow_run", run) == [
        ("Scheduled", "SCHEDULED", 1),
        ("Running", "RUNNING", 2),
    ]
