"""The compiled state path against Strawberry's executor, over HTTP, on both databases.

Two servers share one database: ``server`` (compiled paths on) and one with the compiled
state path off. Each case builds the same runs twice, one set per server, sends the same
proposals to each, and requires the same answers (ids and times aside) and the same rows
afterwards. A spy on the compiled path says which requests it answered: the supported shapes
must be answered there, everything else must reach the executor untouched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from backend.api.compiled_states import CompiledStates
from backend.api.endpoint import GraphQLEndpoint
from sdk import documents
from tests.backend.api.test_mutations import create_flow, create_run, propose, task_run
from tests.conftest import Server

NOBODY = "8e445d74-9ca6-425b-98e5-72754b7ea174"
ALIASED = """mutation ($input: set_task_run_states_input!) {
  renamed: set_task_run_states(input: $input) {
    __typename changes: states { status __typename the_id: id state } kind: __typename } }"""
LITERAL = """mutation { set_flow_run_states(input: {states: [
  {flow_run_id: "%s", version: 2, state: {type: "COMPLETED", details: {why: ["done", 1]}}}
]}) { states { id status message } } }"""
FRAGMENT = """mutation ($input: set_task_run_states_input!) {
  set_task_run_states(input: $input) { states { ...change } } }
fragment change on state_change { id status }"""
DIRECTIVE = """mutation ($input: set_task_run_states_input!, $yes: Boolean!) {
  set_task_run_states(input: $input) { states { id status @include(if: $yes) } } }"""


@pytest.fixture
def both(server: Server) -> Iterator[tuple[Server, Server]]:
    executor = Server(server.database_url).start(compiled_states=False)
    yield server, executor
    executor.stop()


@pytest.fixture
def answered(server: Server) -> list[str | None]:
    """What the compiled state path of ``server`` returned, request by request."""
    [endpoint] = [r.endpoint for r in server.app.routes if isinstance(r.endpoint, GraphQLEndpoint)]
    [compiled] = [c for c in endpoint.compiled if isinstance(c, CompiledStates)]
    results: list[str | None] = []
    execute = compiled.execute

    async def spy(*args: Any, **kwargs: Any) -> str | None:
        results.append(await execute(*args, **kwargs))
        return results[-1]

    compiled.execute = spy  # type: ignore[method-assign]
    return results


def world(server: Server, name: str) -> tuple[str, list[str]]:
    """A Running flow run of its own flow and three Pending task runs: (run, task runs)."""
    create_flow(server, name=name)
    run = create_run(server, flow_name=name)
    assert propose(server, "flow", run, 1, type="RUNNING")["status"] == "ACCEPTED"
    return run, [task_run(server, flow_run_id=run, task_slug=f"t-{i}")["id"] for i in range(3)]


def normalized(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with this side's ids named by role and every timestamp blanked."""
    if isinstance(value, dict):
        return {
            k: "<time>"
            if k in ("timestamp", "start_time", "end_time") and v
            else normalized(v, ids)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [normalized(item, ids) for item in value]
    if isinstance(value, str):
        for id, role in ids.items():
            value = value.replace(id, role)
    return value


def rows(server: Server, run: str) -> list[dict[str, Any]]:
    return server.data(
        """query ($id: uuid!) { task_run(where: {flow_run_id: {_eq: $id}},
             order_by: {task: {slug: asc}}) { state state_type state_message version run_count
             start_time end_time serialized_state
             states(order_by: {version: asc}) { state type message version result details } } }""",
        {"id": run},
    )["task_run"]


def task_proposals(runs: list[str]) -> list[dict[str, Any]]:
    result = {"location": "/tmp/r", "serializer": "pickle"}
    return [
        {"task_run_id": runs[0], "version": 1, "state": {"type": "RUNNING"}},
        {"task_run_id": runs[0], "version": 2, "state": {"type": "COMPLETED", "result": result}},
        {"task_run_id": runs[1], "version": 7, "state": {"type": "RUNNING"}},  # stale
        {"task_run_id": runs[2], "version": 1, "state": {"type": "NOPE"}},  # no such type
        {"task_run_id": runs[2], "version": 1, "state": {"type": "FAILED", "message": "é ✓"}},
        {"task_run_id": NOBODY, "version": 1, "state": {"type": "RUNNING"}},
        {
            "task_run_id": runs[1],
            "version": 1,
            "state": {"details": {"n": 2**70}, "type": "RUNNING"},
        },
    ]


@pytest.mark.parametrize("document", [documents.SET_TASK_RUN_STATES.text, ALIASED])
def test_task_run_proposals_answer_as_the_executor(
    both: tuple[Server, Server], answered: list[str | None], document: str
) -> None:
    compiled, executor = both
    (run_a, runs_a), (run_b, runs_b) = world(compiled, "a"), world(executor, "b")
    answered.clear()
    answer_a = compiled.data(document, {"input": {"states": task_proposals(runs_a)}})
    answer_b = executor.data(document, {"input": {"states": task_proposals(runs_b)}})
    assert len(answered) == 1 and answered[0] is not None
    names_a = {id: f"run-{i}" for i, id in enumerate(runs_a)} | {run_a: "flow-run"}
    names_b = {id: f"run-{i}" for i, id in enumerate(runs_b)} | {run_b: "flow-run"}
    assert normalized(answer_a, names_a) == normalized(answer_b, names_b)
    assert normalized(rows(compiled, run_a), names_a) == normalized(rows(executor, run_b), names_b)
    states = next(iter(answer_a.values()))
    statuses = [change["status"] for change in states.get("states", states.get("changes"))]
    assert statuses == [
        "ACCEPTED", "ACCEPTED", "REJECTED", "REJECTED", "ACCEPTED", "ABORTED", "ACCEPTED"
    ]  # fmt: skip


def test_a_literal_input_and_a_flow_run_answer_as_the_executor(
    both: tuple[Server, Server], answered: list[str | None]
) -> None:
    compiled, executor = both
    (run_a, _), (run_b, _) = world(compiled, "a"), world(executor, "b")
    answered.clear()
    answer_a = compiled.data(LITERAL % run_a)
    answer_b = executor.data(LITERAL % run_b)
    assert len(answered) == 1 and answered[0] is not None
    assert normalized(answer_a, {run_a: "run"}) == normalized(answer_b, {run_b: "run"})
    assert answer_a["set_flow_run_states"]["states"][0]["status"] == "ACCEPTED"


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        (FRAGMENT, {}),
        (DIRECTIVE, {"yes": True}),
    ],
    ids=["fragment", "directive"],
)
def test_other_shapes_reach_the_executor(
    both: tuple[Server, Server], answered: list[str | None], document: str, variables: Any
) -> None:
    compiled, executor = both
    (_, runs_a), (_, runs_b) = world(compiled, "a"), world(executor, "b")
    proposal = {"version": 1, "state": {"type": "RUNNING"}}
    answered.clear()
    a = compiled.data(
        document, {"input": {"states": [{"task_run_id": runs_a[0], **proposal}]}, **variables}
    )
    b = executor.data(
        document, {"input": {"states": [{"task_run_id": runs_b[0], **proposal}]}, **variables}
    )
    assert answered == [None]
    assert normalized(a, {runs_a[0]: "run"}) == normalized(b, {runs_b[0]: "run"})
    assert a["set_task_run_states"]["states"][0]["status"] == "ACCEPTED"


@pytest.mark.parametrize(
    "states",
    [
        [{"task_run_id": "not-a-uuid", "version": 1, "state": {"type": "RUNNING"}}],
        [{"task_run_id": NOBODY, "version": "one", "state": {"type": "RUNNING"}}],
        [{"task_run_id": NOBODY, "state": {"type": "RUNNING"}}],
        None,
        [{"task_run_id": str(uuid.UUID(int=i)), "version": 1, "state": {}} for i in range(10_001)],
    ],
    ids=["bad-uuid", "bad-version", "no-version", "null", "too-many"],
)
def test_bad_input_gets_the_executors_error(
    both: tuple[Server, Server], answered: list[str | None], states: Any
) -> None:
    compiled, executor = both
    document = documents.SET_TASK_RUN_STATES.text
    variables = {"input": {"states": states}}
    answered.clear()
    error = _without_request_ids(compiled.graphql(document, variables))
    assert answered == [None]
    assert error == _without_request_ids(executor.graphql(document, variables))
    assert error["errors"] and error.get("data") is None


def _without_request_ids(body: dict[str, Any]) -> dict[str, Any]:
    """The answer as a client compares it: each request has an id of its own."""
    for error in body.get("errors") or ():
        assert error["extensions"].pop("request_id")
    return body
