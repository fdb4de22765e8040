"""The mutations through HTTP against the real server, on PostgreSQL and SQLite."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import Server

CREATE_FLOW = (
    """mutation ($input: create_flow_input!) { create_flow(input: $input) { id version } }"""
)
CREATE_RUN = (
    """mutation ($input: create_flow_run_input!) { create_flow_run(input: $input) { id } }"""
)
TASK_RUN = """mutation ($input: get_or_create_task_run_input!) {
  get_or_create_task_run(input: $input) { id version state serialized_state } }"""
SET_FLOW = """mutation ($states: [flow_run_state_proposal!]!) {
  set_flow_run_states(input: {states: $states}) { states { id status message state } } }"""
SET_TASK = """mutation ($states: [task_run_state_proposal!]!) {
  set_task_run_states(input: {states: $states}) { states { id status message state } } }"""


def create_flow(server: Server, **input: Any) -> dict[str, Any]:
    return server.data(CREATE_FLOW, {"input": input})["create_flow"]


def create_run(server: Server, **input: Any) -> str:
    return server.data(CREATE_RUN, {"input": input})["create_flow_run"]["id"]


def task_run(server: Server, **input: Any) -> dict[str, Any]:
    return server.data(TASK_RUN, {"input": input})["get_or_create_task_run"]


def propose(server: Server, kind: str, id: str, version: int, **state: Any) -> dict[str, Any]:
    query, key = (SET_FLOW, "flow_run_id") if kind == "flow" else (SET_TASK, "task_run_id")
    field = "set_flow_run_states" if kind == "flow" else "set_task_run_states"
    answer = server.data(query, {"states": [{key: id, "version": version, "state": state}]})
    return answer[field]["states"][0]


def history(server: Server, kind: str, id: str) -> list[tuple[str, str, int]]:
    rows = server.data(
        f"""query ($id: uuid!) {{ {kind}_state(where: {{{kind}_id: {{_eq: $id}}}},
              order_by: {{version: asc}}) {{ state type version }} }}""",
        {"id": id},
    )[f"{kind}_state"]
    return [(row["state"], row["type"], row["version"]) for row in rows]


def run_row(server: Server, kind: str, id: str, fields: str) -> dict[str, Any]:
    query = f"query ($id: uuid!) {{ {kind}_by_pk(id: $id) {{ {fields} }} }}"
    return server.data(query, {"id": id})[f"{kind}_by_pk"]


def test_create_flow_upserts_by_name_and_versions_changes(server: Server) -> None:
    tasks = [{"slug": "extract-1"}, {"slug": "load-1", "max_retries": 2}]
    first = create_flow(server, name="etl", entrypoint="etl.py:etl", tasks=tasks)
    assert first["version"] == 1
    assert create_flow(server, name="etl", entrypoint="etl.py:etl", tasks=tasks) == first
    moved = create_flow(server, name="etl", entrypoint="flows/etl.py:etl", tasks=tasks)
    assert moved == {"id": first["id"], "version": 2}
    more = [*tasks, {"slug": "transform-1", "mapped": True}]
    assert (
        create_flow(server, name="etl", entrypoint="flows/etl.py:etl", tasks=more)["version"] == 3
    )
    listed = server.data("{ task(order_by: {slug: asc}) { slug name mapped max_retries } }")
    assert listed["task"] == [
        {"slug": "extract-1", "name": "extract", "mapped": False, "max_retries": 0},
        {"slug": "load-1", "name": "load", "mapped": False, "max_retries": 2},
        {"slug": "transform-1", "name": "transform", "mapped": True, "max_retries": 0},
    ]


def test_a_runtime_never_replaces_a_registered_entrypoint(server: Server) -> None:
    # What a runtime sends is recorded only while the flow has no entrypoint.
    first = create_flow(server, name="etl", default_entrypoint="/tmp/run.py:etl")
    registered = create_flow(server, name="etl", entrypoint="/srv/etl.py:etl")
    assert registered == {"id": first["id"], "version": 2}
    assert create_flow(server, name="etl", default_entrypoint="/elsewhere.py:etl") == registered
    [row] = server.data("{ flow { entrypoint version } }")["flow"]
    assert row == {"entrypoint": "/srv/etl.py:etl", "version": 2}
    body = server.graphql(
        CREATE_FLOW, {"input": {"name": "etl", "entrypoint": "a.py:x", "default_entrypoint": "b"}}
    )
    assert "not both" in body["errors"][0]["message"]


def test_a_flow_s_labels_and_source_hash_are_registered(server: Server) -> None:
    first = create_flow(server, name="etl", labels=["gpu"], source_hash="aa")
    assert create_flow(server, name="etl", labels=["gpu"], source_hash="aa") == first
    assert create_flow(server, name="etl", source_hash="bb")["version"] == 2  # new code
    assert create_flow(server, name="etl", labels=[])["version"] == 3
    create_flow(server, name="etl", labels=["gpu", "big"])
    create = "mutation ($input: create_flow_run_input!) { create_flow_run(input: $input) { id } }"
    default = server.data(create, {"input": {"flow_name": "etl"}})["create_flow_run"]["id"]
    own = server.data(create, {"input": {"flow_name": "etl", "labels": ["small"]}})
    labels = "query ($id: uuid!) { flow_run_by_pk(id: $id) { labels } }"
    assert server.data(labels, {"id": default})["flow_run_by_pk"]["labels"] == ["gpu", "big"]
    own_id = own["create_flow_run"]["id"]
    assert server.data(labels, {"id": own_id})["flow_run_by_pk"]["labels"] == ["small"]
    body = server.graphql(CREATE_FLOW, {"input": {"name": "etl", "labels": [""]}})
    assert "must be non-empty strings" in body["errors"][0]["message"]


def test_create_flow_run_by_name_or_id_idempotently(server: Server) -> None:
    flow = create_flow(server, name="hello")
    by_name = create_run(server, flow_name="hello", parameters={"name": "marvin"}, labels=["dev"])
    by_id = create_run(server, flow_id=flow["id"], flow_run_name="second")
    assert by_name != by_id
    keyed = create_run(server, flow_name="hello", idempotency_key="nightly-2026-11-21")
    assert create_run(server, flow_name="hello", idempotency_key="nightly-2026-11-21") == keyed
    assert server.data("{ flow_run_aggregate { aggregate { count } } }") == {
        "flow_run_aggregate": {"aggregate": {"count": 3}}
    }
    row = run_row(server, "flow_run", by_name, "state state_type version parameters labels")
    assert row == {
        "state": "Scheduled",
        "state_type": "SCHEDULED",
        "version": 1,
        "parameters": {"name": "marvin"},
        "labels": ["dev"],
    }
    assert history(server, "flow_run", by_name) == [("Scheduled", "SCHEDULED", 1)]
    later = create_run(server, flow_name="hello", scheduled_start_time="2030-01-01T00:00:00+00:00")
    assert run_row(server, "flow_run", later, "scheduled_start_time") == {
        "scheduled_start_time": "2030-01-01T00:00:00+00:00"
    }


def test_create_errors_name_the_value(server: Server) -> None:
    create_flow(server, name="hello")
    cases = [
        (CREATE_RUN, {"input": {"flow_name": "nope"}}, "flow 'nope' does not exist"),
        (CREATE_RUN, {"input": {}}, "give exactly one of flow_id and flow_name"),
        (CREATE_RUN, {"input": {"flow_name": "hello", "parameters": [1]}}, "parameters [1] is"),
        (TASK_RUN, {"input": {"flow_run_id": str(uuid.uuid4()), "task_slug": "a-1"}}, "does not"),
    ]
    for query, variables, fragment in cases:
        body = server.graphql(query, variables)
        assert fragment in body["errors"][0]["message"], body
    assert server.data("{ flow_run_aggregate { aggregate { count } } }") == {
        "flow_run_aggregate": {"aggregate": {"count": 0}}
    }


def test_get_or_create_task_run(server: Server) -> None:
    create_flow(server, name="hello")
    run = create_run(server, flow_name="hello")
    created = task_run(server, flow_run_id=run, task_slug="say_hello-1", max_retries=2)
    assert (created["state"], created["version"]) == ("Pending", 1)
    assert created["serialized_state"]["type"] == "PENDING"
    assert task_run(server, flow_run_id=run, task_slug="say_hello-1")["id"] == created["id"]
    child = task_run(server, flow_run_id=run, task_slug="say_hello-1", map_index=0)
    assert child["id"] != created["id"]
    task = server.data("{ task { slug name max_retries } }")["task"]
    assert task == [{"slug": "say_hello-1", "name": "say_hello", "max_retries": 2}]
    assert history(server, "task_run", created["id"]) == [("Pending", "PENDING", 1)]


def test_a_flow_run_through_every_state_by_graphql_alone(server: Server) -> None:
    create_flow(server, name="hello")
    run = create_run(server, flow_name="hello")
    path = [
        ("SCHEDULED", "Late"),
        ("PENDING", "Pending"),
        ("RUNNING", "Running"),
        ("PAUSED", "Paused"),
        ("RUNNING", "Running"),
        ("CANCELLING", "Cancelling"),
        ("CANCELLED", "Cancelled"),
    ]
    for version, (state_type, name) in enumerate(path, start=1):
        change = propose(server, "flow", run, version, type=state_type, name=name)
        assert change["status"] == "ACCEPTED", change
        assert change["state"]["name"] == name
    # Terminal: nothing moves it, and the refusal says what is in force.
    refused = propose(server, "flow", run, len(path) + 1, type="RUNNING")
    assert refused["status"] == "REJECTED" and refused["state"]["name"] == "Cancelled"
    assert "terminal" in refused["message"]
    row = run_row(server, "flow_run", run, "state version start_time end_time")
    assert row["state"] == "Cancelled" and row["version"] == len(path) + 1
    assert row["start_time"] and row["end_time"]
    assert history(server, "flow_run", run) == [("Scheduled", "SCHEDULED", 1)] + [
        (name, state_type, version) for version, (state_type, name) in enumerate(path, start=2)
    ]
    for end in ("COMPLETED", "FAILED", "CRASHED"):
        other = create_run(server, flow_name="hello")
        assert propose(server, "flow", other, 1, type="RUNNING")["status"] == "ACCEPTED"
        assert propose(server, "flow", other, 2, type=end)["state"]["type"] == end


def test_a_task_run_retries_then_completes_and_a_cache_hit_is_cached(server: Server) -> None:
    create_flow(server, name="hello")
    run = create_run(server, flow_name="hello")
    task = task_run(
        server, flow_run_id=run, task_slug="flaky-1", max_retries=1, cache_key="flaky:1"
    )
    # The flow run is only Scheduled: the task run may not start.
    aborted = propose(server, "task", task["id"], 1, type="RUNNING")
    assert aborted["status"] == "ABORTED" and "not RUNNING" in aborted["message"]
    propose(server, "flow", run, 1, type="RUNNING")

    names = []
    version = 1
    for proposed in [
        {"type": "RUNNING"},
        {"type": "FAILED", "message": "boom"},
        {"type": "RUNNING"},
        {"type": "COMPLETED", "result": {"location": "memory://r/1", "serializer": "json"}},
    ]:
        change = propose(server, "task", task["id"], version, **proposed)
        assert change["status"] == "ACCEPTED", change
        names.append(change["state"]["name"])
        version += 1
    assert names == ["Running", "AwaitingRetry", "Retrying", "Completed"]
    row = run_row(server, "task_run", task["id"], "run_count state start_time end_time")
    assert row["run_count"] == 2 and row["state"] == "Completed" and row["end_time"]

    again = task_run(server, flow_run_id=run, task_slug="flaky-2", cache_key="flaky:1")
    cached = propose(server, "task", again["id"], 1, type="RUNNING")
    assert cached["status"] == "ACCEPTED"
    assert (cached["state"]["type"], cached["state"]["name"]) == ("COMPLETED", "Cached")
    assert cached["state"]["result"] == {"location": "memory://r/1", "serializer": "json"}
    timed_out = task_run(server, flow_run_id=run, task_slug="slow-1")
    propose(server, "task", timed_out["id"], 1, type="RUNNING")
    change = propose(server, "task", timed_out["id"], 2, type="FAILED", name="TimedOut")
    assert change["state"]["name"] == "TimedOut"


def test_a_batch_is_judged_proposal_by_proposal(server: Server) -> None:
    create_flow(server, name="hello")
    run = create_run(server, flow_name="hello")
    missing = str(uuid.uuid4())
    states = [
        {"flow_run_id": run, "version": 1, "state": {"type": "PENDING"}},
        {"flow_run_id": run, "version": 1, "state": {"type": "RUNNING"}},  # stale now
        {"flow_run_id": run, "version": 2, "state": {"type": "RUNNING", "name": "Done"}},
        {"flow_run_id": missing, "version": 1, "state": {"type": "RUNNING"}},
        {"flow_run_id": run, "version": 2, "state": {"type": "RUNNING"}},
    ]
    answer = server.data(SET_FLOW, {"states": states})["set_flow_run_states"]["states"]
    assert [a["status"] for a in answer] == [
        "ACCEPTED",
        "REJECTED",
        "REJECTED",
        "ABORTED",
        "ACCEPTED",
    ]
    assert "version 1 is stale: the run is at version 2" in answer[1]["message"]
    assert answer[1]["state"]["name"] == "Pending"
    assert "'Done' does not belong to type RUNNING" in answer[2]["message"]
    assert f"flow run '{missing}' does not exist" in answer[3]["message"]
    assert answer[3]["state"] is None
    assert history(server, "flow_run", run) == [
        ("Scheduled", "SCHEDULED", 1),
        ("Pending", "PENDING", 2),
        ("Running", "RUNNING", 3),
    ]


def test_cancelling_a_flow_run_cancels_its_unfinished_task_runs(server: Server) -> None:
    create_flow(server, name="hello")
    run = create_run(server, flow_name="hello")
    propose(server, "flow", run, 1, type="RUNNING")
    done = task_run(server, flow_run_id=run, task_slug="a-1")
    waiting = task_run(server, flow_run_id=run, task_slug="b-1")
    propose(server, "task", done["id"], 1, type="RUNNING")
    propose(server, "task", done["id"], 2, type="COMPLETED")
    assert propose(server, "flow", run, 2, type="CANCELLED")["status"] == "ACCEPTED"
    assert run_row(server, "task_run", waiting["id"], "state version") == {
        "state": "Cancelled",
        "version": 2,
    }
    assert history(server, "task_run", waiting["id"])[-1] == ("Cancelled", "CANCELLED", 2)
    assert run_row(server, "task_run", done["id"], "state")["state"] == "Completed"


def test_too_many_proposals_in_one_request_is_an_error(server: Server) -> None:
    states = [
        {"task_run_id": str(uuid.uuid4()), "version": 1, "state": {"type": "RUNNING"}}
    ] * 10_001
    body = server.graphql(SET_TASK, {"states": states})
    assert "10001 states in one request is over the limit of 10000" in body["errors"][0]["message"]


def test_a_flow_run_proposed_crashed_crashes_its_unfinished_task_runs(server: Server) -> None:
    create_flow(server, name="hello")
    run = create_run(server, flow_name="hello")
    propose(server, "flow", run, 1, type="RUNNING")
    working = task_run(server, flow_run_id=run, task_slug="a-1")
    propose(server, "task", working["id"], 1, type="RUNNING")
    assert propose(server, "flow", run, 2, type="CRASHED")["status"] == "ACCEPTED"
    assert history(server, "task_run", working["id"])[-1] == ("Crashed", "CRASHED", 3)
