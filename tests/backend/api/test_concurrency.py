"""Races between real clients over HTTP: optimistic versions hold under concurrency.

The clients spread over four server replicas (each its own uvicorn and event loop, in its
own thread) over one database, as in production behind a load balancer: one server's event
loop alone tends to serialize the requests and would hide a missing row lock.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.backend.api.test_mutations import SET_FLOW, create_flow, create_run, history
from tests.conftest import Server


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


@pytest.mark.anyio
async def test_runs_of_one_flow_create_the_same_new_task_at_once(
    server: Server, replicas: list[Server]
) -> None:
    """Parallel flow runs of one flow reach a new task slug together: the task is created
    once and every run gets its own task run."""
    create_flow(server, name="fan")
    runs = [create_run(server, flow_name="fan") for _ in range(12)]
    query = """mutation ($input: get_or_create_task_run_input!) {
      get_or_create_task_run(input: $input) { id state } }"""

    async def start(http: httpx.AsyncClient, i: int) -> dict[str, Any]:
        variables = {"input": {"flow_run_id": runs[i], "task_slug": "extract-1", "max_retries": 1}}
        response = await http.post(
            f"{replicas[i % 4].url}/graphql", json={"query": query, "variables": variables}
        )
        body = response.json()
        assert "errors" not in body, body
        return body["data"]["get_or_create_task_run"]

    async with httpx.AsyncClient(timeout=60) as http:
        answers = await asyncio.gather(*(start(http, i) for i in range(12)))
    assert len({a["id"] for a in answers}) == 12
    assert server.data("{ task { slug max_retries } }") == {
        "task": [{"slug": "extract-1", "max_retries": 1}]
    }


@pytest.mark.anyio
async def test_batches_naming_the_same_runs_in_opposite_orders_do_not_deadlock(
    server: Server, replicas: list[Server]
) -> None:
    create_flow(server, name="pair")
    runs = [create_run(server, flow_name="pair") for _ in range(30)]

    async def batch(http: httpx.AsyncClient, order: list[str], replica: Server) -> list[str]:
        states = [{"flow_run_id": r, "version": 1, "state": {"type": "PENDING"}} for r in order]
        response = await http.post(
            f"{replica.url}/graphql", json={"query": SET_FLOW, "variables": {"states": states}}
        )
        body = response.json()
        assert "errors" not in body, body
        return [s["status"] for s in body["data"]["set_flow_run_states"]["states"]]

    async with httpx.AsyncClient(timeout=60) as http:
        results = await asyncio.gather(
            *(batch(http, runs if i % 2 else runs[::-1], replicas[i % 4]) for i in range(8))
        )
    # Each run went Pending exactly once, whichever batch got there first.
    accepted = sum(statuses.count("ACCEPTED") for statuses in results)
    assert accepted == len(runs)
