"""A state proposed with a malformed result reference is refused, through HTTP against the
real server on PostgreSQL and SQLite: the proposal is REJECTED with a message naming the
value and what was expected, and nothing of it is stored."""

from __future__ import annotations

from typing import Any

import pytest

from backend.orchestration.states import MAX_LOCATION_CHARS
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

MALFORMED = [
    ("/results/r1", "result '/results/r1' is not a result reference"),
    ({"location": "/results/r1"}, "is not a result reference; expected {location: <URL>,"),
    ({"location": "/r", "serializer": "json", "value": 4}, "is not a result reference"),
    ({"location": 4, "serializer": "json"}, "result location 4 is not a non-empty string"),
    ({"location": "", "serializer": "pickle"}, "result location '' is not a non-empty string"),
    (
        {"location": "/results/r1", "serializer": "yaml"},
        "result serializer 'yaml' is not a serializer; expected one of ['cloudpickle',"
        " 'json', 'pickle'].",
    ),
    (
        {"location": "/" + "r" * MAX_LOCATION_CHARS, "serializer": "pickle"},
        f"characters, over the limit of {MAX_LOCATION_CHARS:,}; expected a path or URL.",
    ),
]


@pytest.fixture
def running(server: Server) -> tuple[str, str]:
    """A running flow run and its running task run: (flow run id, task run id)."""
    create_flow(server, name="refs")
    run = create_run(server, flow_name="refs")
    propose(server, "flow", run, 1, type="RUNNING")
    task = task_run(server, flow_run_id=run, task_slug="load-1")["id"]
    assert propose(server, "task", task, 1, type="RUNNING")["status"] == "ACCEPTED"
    return run, task


def test_malformed_references_are_refused_and_nothing_is_stored(
    server: Server, running: tuple[str, str]
) -> None:
    flow_run_id, task_run_id = running
    fields = "state version serialized_state"
    before = (
        run_row(server, "task_run", task_run_id, fields),
        history(server, "task_run", task_run_id),
    )
    for result, message in MALFORMED:
        change = propose(server, "task", task_run_id, 2, type="COMPLETED", result=result)
        assert change["status"] == "REJECTED", (result, change)
        assert message in change["message"], change["message"]
        assert change["state"]["name"] == "Running"  # the state in force, unchanged
        flow_change = propose(server, "flow", flow_run_id, 2, type="COMPLETED", result=result)
        assert flow_change["status"] == "REJECTED" and message in flow_change["message"]
    after = (
        run_row(server, "task_run", task_run_id, fields),
        history(server, "task_run", task_run_id),
    )
    assert after == before
    assert run_row(server, "flow_run", flow_run_id, "state version")["state"] == "Running"


def test_one_malformed_reference_does_not_fail_its_batch(
    server: Server, running: tuple[str, str]
) -> None:
    flow_run_id, task_run_id = running
    other = task_run(server, flow_run_id=flow_run_id, task_slug="load-2")["id"]
    propose(server, "task", other, 1, type="RUNNING")
    good = {"location": "s3://bucket/runs/r1", "serializer": "cloudpickle"}
    bad: dict[str, Any] = {"location": "s3://bucket/runs/r2", "serializer": "marshal"}
    states = [
        {"task_run_id": task_run_id, "version": 2, "state": {"type": "COMPLETED", "result": bad}},
        {"task_run_id": other, "version": 2, "state": {"type": "COMPLETED", "result": good}},
    ]
    answer = server.data(SET_TASK, {"states": states})["set_task_run_states"]["states"]
    assert [change["status"] for change in answer] == ["REJECTED", "ACCEPTED"]
    assert "'marshal' is not a serializer" in answer[0]["message"]
    assert (
        run_row(server, "task_run", other, "serialized_state")["serialized_state"]["result"] == good
    )
    assert run_row(server, "task_run", task_run_id, "state")["state"] == "Running"
