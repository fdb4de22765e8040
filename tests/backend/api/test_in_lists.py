"""``_in`` and ``_nin`` lists of any length: one bound parameter, one statement shape.

PostgreSQL refuses a statement of more than 65,535 parameters, so a list bound item by item
failed past that length (and every length was a new statement to build and cache). A list is
now one parameter: an array on PostgreSQL, JSON text on SQLite. Both read paths answer, the
compiled one and the executor; the relationship loader binds its parent keys the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Server

TASK_RUNS = "query ($c: {type}_comparison_exp) {{ task_run(where: {{{column}: $c}}) {{ id }} }}"


@pytest.fixture(scope="module")
def both(seeded: tuple[Server, Any]) -> Iterator[tuple[Server, Server, Any]]:
    """(compiled server, executor server, dataset) over the module's seeded database."""
    compiled, data = seeded
    executor = Server(compiled.database_url).start(compiled_reads=False)
    yield compiled, executor, data
    executor.stop()


def _ids(server: Server, column: str, type: str, comparison: dict[str, Any]) -> set[str]:
    query = TASK_RUNS.format(type=type, column=column)
    return {row["id"] for row in server.data(query, {"c": comparison})["task_run"]}


def _task_runs(data: Any, keep: Any) -> set[str]:
    return {str(row.id) for row in data.task_runs.values() if keep(row)}


def test_a_list_of_100000_items_answers(both: tuple[Server, Server, Any]) -> None:
    *servers, data = both
    happy, sad = (data.flow_runs[name].id for name in ("happy", "sad"))
    ids = [str(uuid.uuid4()) for _ in range(99_998)] + [str(happy), str(sad)]
    numbers = list(range(-99_999, 0, 2)) + list(range(1, 100_000, 2))  # odd: -1 and 1 among them
    in_runs = _task_runs(data, lambda row: row.flow_run_id in (happy, sad))
    odd = _task_runs(data, lambda row: row.map_index in (-1, 1))
    everything = _task_runs(data, lambda row: True)
    for server in servers:
        assert _ids(server, "flow_run_id", "uuid", {"_in": ids}) == in_runs
        assert _ids(server, "flow_run_id", "uuid", {"_nin": ids}) == everything - in_runs
        assert _ids(server, "map_index", "Int", {"_in": numbers}) == odd
        assert _ids(server, "map_index", "Int", {"_nin": numbers}) == everything - odd


def _statements(server: Server, query: str, variables: dict[str, Any]) -> list[str]:
    server.statements.clear()
    server.data(query, variables)
    return server.queries


@pytest.mark.parametrize(
    ("type", "column", "values"),
    [
        ("uuid", "flow_run_id", lambda n: [str(uuid.uuid4()) for _ in range(n)]),
        ("String", "state", lambda n: [f"state {i}" for i in range(n)]),
        ("Int", "map_index", lambda n: list(range(n))),
        (
            "timestamptz",
            "start_time",
            lambda n: [f"2021-05-12T18:00:{i % 60:02}Z" for i in range(n)],
        ),
    ],
)
def test_one_statement_shape_for_any_length(
    both: tuple[Server, Server, Any], type: str, column: str, values: Any
) -> None:
    *servers, _ = both
    query = TASK_RUNS.format(type=type, column=column)
    for server in servers:
        for operator in ("_in", "_nin"):
            one = _statements(server, query, {"c": {operator: values(1)}})
            thousand = _statements(server, query, {"c": {operator: values(1000)}})
            assert one == thousand
            assert sum(len(statement) for statement in one) < 2000  # no list spelled out


def test_the_relationship_loader_binds_its_keys_as_one_list(
    both: tuple[Server, Server, Any],
) -> None:
    _, executor, data = both
    query = (
        "query ($names: [String!]) { flow_run(where: {name: {_in: $names}}) {"
        " task_runs(order_by: {map_index: asc}) { id } } }"
    )
    one = _statements(executor, query, {"names": ["happy"]})
    four = _statements(executor, query, {"names": ["happy", "sad", "busy", "child"]})
    assert one == four and len(one) == 2  # the flow runs, then their task runs at once


@pytest.mark.parametrize(
    ("comparison", "truth"),
    [
        # SQL's truth value for a state_message: None is unknown (a null compared)
        ({"_in": []}, lambda message: False),
        ({"_nin": []}, lambda message: True),  # null messages too
        ({"_in": ["boom"]}, lambda message: None if message is None else message == "boom"),
        ({"_nin": ["boom"]}, lambda message: None if message is None else message != "boom"),
    ],
)
def test_empty_lists_and_nulls(
    both: tuple[Server, Server, Any], comparison: dict[str, Any], truth: Any
) -> None:
    *servers, data = both
    query = (
        "query ($c: String_comparison_exp) { task_run(where: {_not: {state_message: $c}}) { id } }"
    )
    for server in servers:
        expected = _task_runs(data, lambda row: truth(row.state_message) is True)
        assert _ids(server, "state_message", "String", comparison) == expected
        # _not of unknown is unknown: a null message matches neither the list nor its _not
        negated = _task_runs(data, lambda row: truth(row.state_message) is False)
        answer = server.data(query, {"c": comparison})["task_run"]
        assert {row["id"] for row in answer} == negated
