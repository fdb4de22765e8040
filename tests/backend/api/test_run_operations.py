"""Mapped children, cancel, delete, heartbeats, logs and claims, through HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.backend.api.test_mutations import (
    SET_TASK,
    create_flow,
    create_run,
    history,
    propose,
    run_row,
    task_run,
)
from tests.conftest import Server

CHILDREN = """mutation ($input: get_or_create_mapped_task_run_children_input!) {
  get_or_create_mapped_task_run_children(input: $input) { ids } }"""
CANCEL = """mutation ($id: uuid!) { cancel_flow_run(input: {flow_run_id: $id}) {
  status message state } }"""
DELETE = "mutation ($id: uuid!) { delete_flow_run(input: {flow_run_id: $id}) { id } }"
LOGS = """mutation ($logs: [run_log_input!]!) { write_run_logs(input: {logs: $logs}) { count } }"""
CLAIM = """mutation ($limit: Int!, $labels: [String!]) {
  claim_flow_runs(input: {limit: $limit, labels: $labels}) {
    flow_runs { id name state version flow { name } } } }"""


def running_flow_run(server: Server, flow: str = "hello") -> str:
    create_flow(server, name=flow)
    run = create_run(server, flow_name=flow)
    assert propose(server, "flow", run, 1, type="RUNNING")["status"] == "ACCEPTED"
    return run


def test_ten_thousand_mapped_children_in_one_call(server: Server) -> None:
    run = running_flow_run(server)
    parent = task_run(server, flow_run_id=run, task_slug="inc-1")
    server.statements.clear()
    arguments = {"input": {"flow_run_id": run, "task_slug": "inc-1", "max_map_index": 9_999}}
    ids = server.data(CHILDREN, arguments)["get_or_create_mapped_task_run_children"]["ids"]
    statements = len(server.queries)
    assert len(ids) == len(set(ids)) == 10_000 and parent["id"] not in ids
    # Bulk, not per child. PostgreSQL: the parent, marking the task mapped, ONE insert of
    # the runs and their first states, the read back. SQLite: multi-row INSERTs.
    if server.database_url.startswith("postgresql"):
        assert statements == 4, server.queries
    else:
        assert statements < 60, statements
    # Asking again (a runtime retrying the request) gives the same children.
    again = server.data(CHILDREN, arguments)["get_or_create_mapped_task_run_children"]["ids"]
    assert again == ids
    rows = server.data(
        """query ($id: uuid!) { task_run(where: {flow_run_id: {_eq: $id}, map_index: {_gte: 0}},
             order_by: {map_index: asc}, limit: 3) { id map_index state version } }""",
        {"id": run},
    )["task_run"]
    assert rows == [
        {"id": ids[i], "map_index": i, "state": "Pending", "version": 1} for i in range(3)
    ]
    counts = server.data(
        """query ($id: uuid!) { task_run_state_aggregate(where: {task_run: {flow_run_id:
             {_eq: $id}}}) { aggregate { count } } }""",
        {"id": run},
    )
    assert counts["task_run_state_aggregate"]["aggregate"]["count"] == 10_001
    assert server.data("{ task { mapped } }") == {"task": [{"mapped": True}]}


def test_mapped_children_errors(server: Server) -> None:
    run = running_flow_run(server)
    single = task_run(server, flow_run_id=run, task_slug="single-1")
    propose(server, "task", single["id"], 1, type="RUNNING")
    cases = [
        ("single-1", 3, "is not a mapped parent: it already ran as a single task run"),
        ("missing-1", 3, "task run 'missing-1' of flow run"),
        ("single-1", -1, "max_map_index -1 is out of range"),
        ("single-1", 100_000, "max_map_index 100000 is out of range"),
    ]
    for slug, max_index, fragment in cases:
        arguments = {"input": {"flow_run_id": run, "task_slug": slug, "max_map_index": max_index}}
        body = server.graphql(CHILDREN, arguments)
        assert fragment in body["errors"][0]["message"], body
    assert server.data("{ task_run_aggregate { aggregate { count } } }") == {
        "task_run_aggregate": {"aggregate": {"count": 1}}
    }


def test_cancel_a_scheduled_and_a_running_flow_run(server: Server) -> None:
    create_flow(server, name="hello")
    scheduled = create_run(server, flow_name="hello")
    answer = server.data(CANCEL, {"id": scheduled})["cancel_flow_run"]
    assert (answer["status"], answer["state"]["name"]) == ("ACCEPTED", "Cancelled")

    running = create_run(server, flow_name="hello")
    propose(server, "flow", running, 1, type="RUNNING")
    pending = task_run(server, flow_run_id=running, task_slug="work-1")
    answer = server.data(CANCEL, {"id": running})["cancel_flow_run"]
    assert (answer["status"], answer["state"]["name"]) == ("ACCEPTED", "Cancelling")
    again = server.data(CANCEL, {"id": running})["cancel_flow_run"]
    assert again["status"] == "REJECTED" and "already Cancelling" in again["message"]
    # A worker that missed the cancellation cannot carry on...
    late = propose(server, "task", pending["id"], 1, type="RUNNING")
    assert late["status"] == "ABORTED"
    # ...and the runtime ends the flow run Cancelled, which cancels its task runs.
    assert propose(server, "flow", running, 3, type="CANCELLED")["status"] == "ACCEPTED"
    assert run_row(server, "task_run", pending["id"], "state")["state"] == "Cancelled"
    body = server.graphql(CANCEL, {"id": str(uuid.uuid4())})
    assert "does not exist" in body["errors"][0]["message"]


def test_delete_a_flow_run_and_everything_under_it(server: Server) -> None:
    run = running_flow_run(server)
    task = task_run(server, flow_run_id=run, task_slug="a-1")
    server.data(LOGS, {"logs": [{"flow_run_id": run, "level": 20, "name": "x", "message": "m"}]})
    child = create_run(server, flow_name="hello", parent_task_run_id=task["id"])
    keep = running_flow_run(server, flow="other")
    assert server.data(DELETE, {"id": run}) == {"delete_flow_run": {"id": run}}
    counts = server.data(
        """{ f: flow_run_aggregate { aggregate { count } }
             t: task_run_aggregate { aggregate { count } }
             s: flow_run_state_aggregate { aggregate { count } }
             ts: task_run_state_aggregate { aggregate { count } }
             l: log_aggregate { aggregate { count } } }"""
    )
    assert {k: v["aggregate"]["count"] for k, v in counts.items()} == {
        "f": 2,  # the child and the other flow's run
        "t": 0,
        "s": 1 + 2,  # child: Scheduled; keep: Scheduled, Running
        "ts": 0,
        "l": 0,
    }
    assert run_row(server, "flow_run", child, "parent_task_run_id") == {"parent_task_run_id": None}
    assert run_row(server, "flow_run", keep, "state") == {"state": "Running"}
    body = server.graphql(DELETE, {"id": run})
    assert f"flow run '{run}' does not exist" in body["errors"][0]["message"]


def test_heartbeats_report_the_state(server: Server) -> None:
    run = running_flow_run(server)
    task = task_run(server, flow_run_id=run, task_slug="a-1")
    beat = server.data(
        """mutation ($id: uuid!) { update_flow_run_heartbeat(input: {flow_run_id: $id}) {
             id heartbeat state state_type } }""",
        {"id": run},
    )["update_flow_run_heartbeat"]
    assert (beat["id"], beat["state"], beat["state_type"]) == (run, "Running", "RUNNING")
    assert run_row(server, "flow_run", run, "heartbeat")["heartbeat"] == beat["heartbeat"]
    task_beat = server.data(
        """mutation ($id: uuid!) { update_task_run_heartbeat(input: {task_run_id: $id}) {
             state } }""",
        {"id": task["id"]},
    )
    assert task_beat == {"update_task_run_heartbeat": {"state": "Pending"}}
    missing = server.graphql(
        "mutation { update_task_run_heartbeat(input: {task_run_id: "
        '"00000000-0000-0000-0000-000000000000"}) { state } }'
    )
    assert (
        "task run '00000000-0000-0000-0000-000000000000' does not exist"
        in (missing["errors"][0]["message"])
    )


def test_logs_are_written_in_batches(server: Server) -> None:
    run = running_flow_run(server)
    task = task_run(server, flow_run_id=run, task_slug="a-1")
    logs = [
        {"flow_run_id": run, "level": 20, "name": "runview.flow", "message": "start"},
        {
            "flow_run_id": run,
            "task_run_id": task["id"],
            "level": 40,
            "name": "runview.task",
            "message": "boom",
            "timestamp": "2026-11-21T10:00:00+00:00",
        },
    ]
    assert server.data(LOGS, {"logs": logs}) == {"write_run_logs": {"count": 2}}
    read = server.data(
        """query ($id: uuid!) { flow_run_by_pk(id: $id) {
             logs(order_by: {level: asc}) { message level task_run { id } } } }""",
        {"id": run},
    )["flow_run_by_pk"]["logs"]
    assert read == [
        {"message": "start", "level": 20, "task_run": None},
        {"message": "boom", "level": 40, "task_run": {"id": task["id"]}},
    ]
    assert server.data("{ log_aggregate { aggregate { count } } }") == {
        "log_aggregate": {"aggregate": {"count": 2}}
    }


def test_each_log_record_is_judged_on_its_own(server: Server) -> None:
    """A bad record is refused with its reason; the rest of its batch is stored, and a
    record sent again (same client-made id) is stored once."""
    run = running_flow_run(server)
    other = running_flow_run(server, flow="other")
    task = task_run(server, flow_run_id=run, task_slug="a-1")
    good = {"flow_run_id": run, "level": 20, "name": "runview.flow", "message": "fine"}
    resent = {**good, "id": "5d1f1c0e-7a47-4d6e-9c51-0f8d1a1b2c3d", "message": "once"}
    batch = [
        good,
        {**good, "task_run_id": task["id"], "flow_run_id": other},
        {**good, "message": "a NUL \u0000 here"},
        {**good, "flow_run_id": "00000000-0000-0000-0000-000000000000"},
        resent,
        resent,
    ]
    query = """mutation ($logs: [run_log_input!]!) {
      write_run_logs(input: {logs: $logs}) { count rejected { index message } } }"""
    answer = server.data(query, {"logs": batch})["write_run_logs"]
    assert answer["count"] == 3
    rejected = {r["index"]: r["message"] for r in answer["rejected"]}
    assert sorted(rejected) == [1, 2, 3]
    assert f"task run '{task['id']}' does not exist in flow run '{other}'" in rejected[1]
    assert "log message 'a NUL \\x00 here' holds a NUL character" in rejected[2]
    assert "flow run '00000000-0000-0000-0000-000000000000' does not exist" in rejected[3]
    assert server.data(query, {"logs": [resent]})["write_run_logs"]["count"] == 1
    stored = server.data(
        """query ($id: uuid!) { log(where: {flow_run_id: {_eq: $id}}, order_by: {message: asc})
             { message } }""",
        {"id": run},
    )["log"]
    assert [log["message"] for log in stored] == ["fine", "once"]


def test_claims_take_due_runs_whose_labels_the_agent_has(server: Server) -> None:
    create_flow(server, name="hello", entrypoint="hello.py:hello")
    # A flow without an entrypoint cannot be loaded by an agent: nobody could run its
    # Scheduled runs but the process that created them.
    create_flow(server, name="in_process")
    create_run(server, flow_name="in_process", flow_run_name="mine")
    plain = create_run(server, flow_name="hello", flow_run_name="plain")
    gpu = create_run(server, flow_name="hello", flow_run_name="gpu", labels=["gpu"])
    both = create_run(server, flow_name="hello", flow_run_name="both", labels=["gpu", "eu"])
    create_run(
        server,
        flow_name="hello",
        flow_run_name="future",
        scheduled_start_time="2999-01-01T00:00:00+00:00",
    )
    # A run its creator runs at once is created Pending: no agent ever sees it Scheduled.
    created = server.data(
        'mutation { create_flow_run(input: {flow_name: "hello", pending: true}) { id version } }'
    )["create_flow_run"]
    assert created["version"] == 2
    assert history(server, "flow_run", created["id"]) == [
        ("Scheduled", "SCHEDULED", 1),
        ("Pending", "PENDING", 2),
    ]

    def claim(limit: int, labels: list[str]) -> list[str]:
        runs = server.data(CLAIM, {"limit": limit, "labels": labels})["claim_flow_runs"]
        assert all(
            r["state"] == "Pending" and r["flow"]["name"] == "hello" for r in runs["flow_runs"]
        )
        return sorted(r["name"] for r in runs["flow_runs"])

    assert claim(10, ["gpu"]) == ["gpu", "plain"]
    assert claim(10, ["gpu"]) == []  # claimed already
    assert claim(10, ["eu", "gpu", "x"]) == ["both"]
    assert history(server, "flow_run", plain) == [
        ("Scheduled", "SCHEDULED", 1),
        ("Pending", "PENDING", 2),
    ]
    assert run_row(server, "flow_run", gpu, "version") == {"version": 2}
    assert run_row(server, "flow_run", both, "state") == {"state": "Pending"}
    body = server.graphql(CLAIM, {"limit": 0})
    assert "limit 0 is out of range" in body["errors"][0]["message"]


@pytest.mark.anyio
async def test_four_agents_claim_two_hundred_runs_each_exactly_once(
    server: Server, replicas: list[Server]
) -> None:
    create_flow(server, name="batch", entrypoint="batch.py:batch")
    created = {create_run(server, flow_name="batch") for _ in range(200)}

    async def agent(http: httpx.AsyncClient, replica: Server) -> list[str]:
        claimed: list[str] = []
        while True:
            response = await http.post(
                f"{replica.url}/graphql",
                json={"query": CLAIM, "variables": {"limit": 7, "labels": []}},
            )
            body: dict[str, Any] = response.json()
            assert "errors" not in body, body
            runs = body["data"]["claim_flow_runs"]["flow_runs"]
            if not runs:
                return claimed
            claimed += [run["id"] for run in runs]

    async with httpx.AsyncClient(timeout=60) as http:
        per_agent = await asyncio.gather(*(agent(http, replica) for replica in replicas))
    claims = Counter(id for ids in per_agent for id in ids)
    assert set(claims) == created
    assert set(claims.values()) == {1}


def test_a_poisoned_proposal_over_http_is_refused_alone(server: Server) -> None:
    """The NUL reaches the server as JSON's \\u0000 escape, is named in the refusal, and
    its neighbour is accepted: on the compiled path and on the executor alike."""
    run = running_flow_run(server)
    runs = [task_run(server, flow_run_id=run, task_slug=slug)["id"] for slug in "abcd"]
    # A directive sends the same mutation to the executor (the compiled path takes none).
    executor = SET_TASK.replace("{ states {", "{ states @include(if: true) {")
    for query, (good, bad) in ((SET_TASK, runs[:2]), (executor, runs[2:])):
        states = [
            {"task_run_id": good, "version": 1, "state": {"type": "RUNNING"}},
            {"task_run_id": bad, "version": 1, "state": {"type": "RUNNING", "message": "a\x00b"}},
        ]
        changes = server.data(query, {"states": states})["set_task_run_states"]["states"]
        assert [c["status"] for c in changes] == ["ACCEPTED", "REJECTED"], changes
        assert "state.message 'a\\x00b' holds a NUL character" in changes[1]["message"]
        assert [name for name, _, _ in history(server, "task_run", bad)] == ["Pending"]
