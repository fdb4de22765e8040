"""The compiled read path over HTTP: which requests it answers, and what it leaves alone.

A server counts the SQL statements it runs: a request the compiled path answers costs exactly
one, whatever its nesting. Everything else must reach Strawberry's executor with its body
intact and get the executor's answer, errors included.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server

NESTED = """
query Runs($flow: String!, $withLogs: Boolean!, $limit: Int = 2) {
  runs: flow_run(where: {flow: {name: {_eq: $flow}}}, order_by: [{start_time: desc}]) {
    ...Run
    logs @include(if: $withLogs) { message }
    task_runs(order_by: {start_time: asc}, limit: $limit) {
      __typename
      slug: task { slug }
      states(order_by: {version: asc}) @skip(if: false) { state version }
    }
  }
  how_many: flow_run_aggregate(where: {flow: {name: {_eq: $flow}}}) { aggregate { count } }
  nobody: flow_run_by_pk(id: "00000000-0000-4000-8000-000000000000") { id }
}
fragment Run on flow_run {
  id name state start_time parameters who: parameters(path: "$.name") flow { name }
}
"""


@pytest.fixture
def both(seeded: tuple[Server, Any]) -> Iterator[tuple[Server, Server]]:
    """The module's seeded server (compiled reads on) and one with them off, same database."""
    compiled, _ = seeded
    executor = Server(compiled.database_url).start(compiled_reads=False)
    yield compiled, executor
    executor.stop()


def _statements(server: Server, query: str, variables: dict[str, Any] | None = None) -> int:
    server.statements.clear()
    server.graphql(query, variables)
    return len(server.queries)


def test_a_nested_query_is_one_statement_and_answers_as_the_executor(
    both: tuple[Server, Server],
) -> None:
    compiled, executor = both
    variables = {"flow": "hello", "withLogs": True}
    assert _statements(compiled, NESTED, variables) == 1
    assert _statements(executor, NESTED, variables) > 1
    assert _statements(compiled, "{ __typename }") == 0  # nothing to ask the database
    answer = compiled.data(NESTED, variables)
    assert answer == executor.data(NESTED, variables)
    assert [run["name"] for run in answer["runs"]] == ["child", "sad", "happy"]
    assert answer["how_many"] == {"aggregate": {"count": 3}}
    assert answer["nobody"] is None
    assert list(answer["runs"][2]) == [
        "id", "name", "state", "start_time", "parameters", "who", "flow", "logs", "task_runs"
    ]  # fmt: skip
    assert answer["runs"][2]["who"] == "marvin" and answer["runs"][0]["who"] is None
    assert answer["runs"][2]["start_time"] == "2021-05-12T18:00:00.696849+00:00"
    assert answer["runs"][2]["task_runs"][0]["__typename"] == "task_run"


def test_the_operation_is_chosen_by_name(both: tuple[Server, Server]) -> None:
    compiled, _ = both
    document = "query A { flow { name } } query B { flow_aggregate { aggregate { count } } }"
    response = httpx.post(
        f"{compiled.url}/graphql", json={"query": document, "operationName": "B"}
    ).json()
    assert response == {"data": {"flow_aggregate": {"aggregate": {"count": 2}}}}


@pytest.mark.parametrize(
    ("query", "variables", "message"),
    [
        ('{ flow_run_by_pk(id: "nope") { id } }', None, "'nope' is not a uuid"),
        ("query ($id: uuid!) { flow_run_by_pk(id: $id) { id } }", {"id": "x"}, "'x' is not a uuid"),
        ("{ flow(where: {name: null}) { id } }", None, "flow_bool_exp.name is null"),
        ("{ flow(limit: -1) { id } }", None, "limit must be zero or more; got -1"),
        ("{ flow { nope } }", None, "Cannot query field 'nope' on type 'flow'"),
        ("query ($n: String!) { flow(where: {name: {_eq: $n}}) { id } }", {}, "$n"),
        ("{ flow { id }", None, "Syntax Error"),
        ('{ flow_run { labels(path: "a b") } }', None, "'a b' is not a JSON path"),
    ],
)
def test_what_the_executor_refuses_it_answers(
    seeded: tuple[Server, Any], query: str, variables: dict[str, Any] | None, message: str
) -> None:
    server, _ = seeded
    body = server.graphql(query, variables)
    assert message in body["errors"][0]["message"], body


def test_everything_else_reaches_the_executor(seeded: tuple[Server, Any]) -> None:
    server, _ = seeded
    introspection = server.data("{ __schema { queryType { name } } }")
    assert introspection == {"__schema": {"queryType": {"name": "Query"}}}
    created = server.data('mutation { create_flow(input: {name: "compiled-http"}) { version } }')
    assert created == {"create_flow": {"version": 1}}
    # GET queries and over-wide objects (PostgreSQL takes 100 arguments per function).
    wide = (
        '{ flow(where: {name: {_eq: "hello"}}) { '
        + " ".join(f"n{i}: name" for i in range(60))
        + " } }"
    )
    assert server.data(wide)["flow"] == [{f"n{i}": "hello" for i in range(60)}]
    response = httpx.get(f"{server.url}/graphql", params={"query": "{ flow(limit: 1) { name } }"})
    assert response.status_code == 200 and "errors" not in response.json()
