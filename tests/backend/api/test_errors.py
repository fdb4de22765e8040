"""Bad input gets HTTP 200, ``errors`` naming the value and what was expected, and no
traceback; the data already stored is untouched."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

CASES = [
    # (query, variables, fragments the message must contain)
    ('{ task_run_by_pk(id: "not-a-uuid") { id } }', None, ["'not-a-uuid'", "uuid"]),
    (
        "query ($id: uuid!) { task_run_by_pk(id: $id) { id } }",
        {"id": "not-a-uuid"},
        ["'not-a-uuid'", "uuid"],
    ),
    (
        '{ task_run(where: {flow_run_id: {_in: ["00000000-0000-4000-8000-000000000001", "x"]}})'
        " { id } }",
        None,
        ["'x'", "uuid"],
    ),
    ("{ task_run(where: {nope: {_eq: 1}}) { id } }", None, ["nope", "task_run_bool_exp"]),
    (
        '{ task_run(where: {state: {_regex: "x"}}) { id } }',
        None,
        ["_regex", "String_comparison_exp"],
    ),
    ('{ task_run(where: {map_index: {_eq: "x"}}) { id } }', None, ['"x"', "Int"]),
    ("{ task_run(where: {state: {_eq: 3}}) { id } }", None, ["3", "String"]),
    (
        '{ task_run(where: {start_time: {_gt: "yesterday"}}) { id } }',
        None,
        ["'yesterday'", "timestamptz"],
    ),
    ("{ task_run(order_by: {state: sideways}) { id } }", None, ["sideways", "order_by"]),
    ("{ task_run(order_by: {states: asc}) { id } }", None, ["states", "task_run_order_by"]),
    ("{ task_run { id nope } }", None, ["nope", "task_run"]),
    ("{ task_run(where: {state: {_eq: null}}) { id } }", None, ["_eq: null", "_is_null"]),
    ("{ task_run(where: {state: null}) { id } }", None, ["state is null", "leave the field out"]),
    ("{ task_run(limit: -1) { id } }", None, ["limit", "-1"]),
    ("{ flow_run { task_runs(offset: -5) { id } } }", None, ["offset", "-5"]),
    ("{ task_run(", None, ["Syntax Error"]),
]


@pytest.mark.parametrize(("query", "variables", "fragments"), CASES)
def test_bad_input_is_a_clear_graphql_error(
    seeded: Any, query: str, variables: Any, fragments: list[str]
) -> None:
    server, _ = seeded
    before = server.data("{ task_run_aggregate { aggregate { count } } }")
    response = httpx.post(f"{server.url}/graphql", json={"query": query, "variables": variables})
    assert response.status_code in (200, 400)  # 400 only for a document that does not parse
    if "Syntax Error" not in fragments:
        assert response.status_code == 200
    body = response.json()
    assert body.get("data") is None
    message = " ".join(error["message"] for error in body["errors"])
    for fragment in fragments:
        assert fragment in message
    assert "Traceback" not in response.text
    assert "sqlalchemy" not in response.text.lower()
    assert server.data("{ task_run_aggregate { aggregate { count } } }") == before
