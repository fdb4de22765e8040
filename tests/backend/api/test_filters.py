"""Filters of every kind, with answers worked out by hand from the dataset.

Each case is run once with the filter written inline (as a person types it in the playground)
and once passed as a variable (as the SDK sends it), on PostgreSQL and on SQLite.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

HAPPY = {"happy/name-1/-1", "happy/capitalize-1/-1", "happy/say_hello-1/-1"}
SAD_OK = {"sad/name-1/-1", "sad/capitalize-1/-1"}
SAD_FAILED = {"sad/say_hello-1/-1"}
BUSY = {
    "busy/extract-1/-1",
    "busy/transform-1/-1",
    "busy/transform-1/0",
    "busy/transform-1/1",
    "busy/transform-1/2",
    "busy/load-1/-1",
}
ALL = HAPPY | SAD_OK | SAD_FAILED | BUSY
COMPLETED = HAPPY | SAD_OK | {"busy/extract-1/-1", "busy/transform-1/0"}
FAILED = SAD_FAILED | {"busy/transform-1/1"}
RUNNING = {"busy/transform-1/-1", "busy/transform-1/2"}
PENDING = {"busy/load-1/-1"}
CHILDREN = {"busy/transform-1/0", "busy/transform-1/1", "busy/transform-1/2"}

TASK_RUN_CASES: list[tuple[str, set[str]]] = [
    # String
    ('{state: {_eq: "Failed"}}', FAILED),
    ('{state: {_neq: "Completed"}}', FAILED | RUNNING | PENDING),
    ('{state: {_gt: "Pending"}}', RUNNING),
    ('{state: {_gte: "Pending"}}', RUNNING | PENDING),
    ('{state: {_lt: "Failed"}}', COMPLETED),
    ('{state: {_lte: "Failed"}}', COMPLETED | FAILED),
    ('{state: {_in: ["Pending", "Failed"]}}', PENDING | FAILED),
    ('{state: {_nin: ["Completed", "Running"]}}', PENDING | FAILED),
    ('{state: {_like: "Comp%"}}', COMPLETED),
    ('{state: {_like: "comp%"}}', set()),
    ('{state: {_ilike: "comp%"}}', COMPLETED),
    ('{state: {_like: "R_nning"}}', RUNNING),
    ("{state_message: {_is_null: false}}", SAD_FAILED),
    ("{state_message: {_is_null: true}}", ALL - SAD_FAILED),
    # Int
    ("{map_index: {_eq: 1}}", {"busy/transform-1/1"}),
    ("{map_index: {_neq: -1}}", CHILDREN),
    ("{map_index: {_gt: -1}}", CHILDREN),
    ("{map_index: {_gte: 1}}", {"busy/transform-1/1", "busy/transform-1/2"}),
    ("{map_index: {_lt: 0}}", ALL - CHILDREN),
    ("{map_index: {_lte: 0}}", ALL - CHILDREN | {"busy/transform-1/0"}),
    ("{map_index: {_in: [0, 2]}}", {"busy/transform-1/0", "busy/transform-1/2"}),
    ("{map_index: {_nin: [-1]}}", CHILDREN),
    ("{run_count: {_eq: 3}}", SAD_FAILED),
    # timestamptz, with and without the UTC offset written as another zone
    ('{start_time: {_gt: "2021-05-12T18:01:00+00:00"}}', SAD_OK | SAD_FAILED | BUSY - PENDING),
    ('{start_time: {_gt: "2021-05-12T20:01:00+02:00"}}', SAD_OK | SAD_FAILED | BUSY - PENDING),
    ('{start_time: {_lt: "2021-05-12T18:00:02Z"}}', {"happy/name-1/-1"}),
    (
        '{start_time: {_lte: "2021-05-12T18:00:02.696849+00:00"}}',
        {"happy/name-1/-1", "happy/capitalize-1/-1"},
    ),
    ('{start_time: {_gte: "2021-05-12T18:02:05.696849+00:00"}}', {"busy/transform-1/2"}),
    ('{start_time: {_eq: "2021-05-12T18:00:03.696849+00:00"}}', {"happy/say_hello-1/-1"}),
    ("{start_time: {_is_null: true}}", PENDING),
    # logic and the empty forms
    ('{_and: [{state: {_eq: "Completed"}}, {map_index: {_eq: 0}}]}', {"busy/transform-1/0"}),
    ('{_or: [{state: {_eq: "Pending"}}, {map_index: {_eq: 1}}]}', PENDING | {"busy/transform-1/1"}),
    ('{_not: {state: {_eq: "Completed"}}}', FAILED | RUNNING | PENDING),
    ('{_not: {_or: [{state: {_eq: "Completed"}}, {state: {_eq: "Failed"}}]}}', RUNNING | PENDING),
    ("{}", ALL),
    ("{_and: []}", ALL),
    ("{_or: []}", set()),
    ("{_not: {}}", set()),
    ("{state: {}}", ALL),
    ("{state: {_in: []}}", set()),
    ("{state: {_nin: []}}", ALL),
    ('{state: {_eq: "Completed"}, map_index: {_eq: 0}}', {"busy/transform-1/0"}),
    # object relationships, nested
    ('{task: {slug: {_eq: "say_hello-1"}}}', {"happy/say_hello-1/-1", "sad/say_hello-1/-1"}),
    ("{task: {mapped: {_eq: true}}}", {"busy/transform-1/-1"} | CHILDREN),
    ("{task: {retry_delay_seconds: {_gt: 1.0}}}", {"happy/say_hello-1/-1", "sad/say_hello-1/-1"}),
    ('{flow_run: {flow: {name: {_eq: "etl"}}}}', BUSY),
    ('{state: {_eq: "Completed"}, flow_run: {name: {_eq: "sad"}}}', SAD_OK),
    # a list relationship inside an object relationship: "tasks that ever failed"
    (
        '{task: {task_runs: {state: {_eq: "Failed"}}}}',
        {"happy/say_hello-1/-1", "sad/say_hello-1/-1", "busy/transform-1/-1"} | CHILDREN,
    ),
    ('{states: {state: {_eq: "Running"}}}', {"happy/say_hello-1/-1"}),
    ("{logs: {level: {_gte: 40}}}", SAD_FAILED),
]


def _key(row: dict[str, Any]) -> str:
    return f"{row['flow_run']['name']}/{row['task']['slug']}/{row['map_index']}"


SELECTION = "{ map_index task { slug } flow_run { name } }"


@pytest.mark.parametrize(("where", "expected"), TASK_RUN_CASES)
def test_task_run_filter_inline(seeded: Any, where: str, expected: set[str]) -> None:
    server, _ = seeded
    rows = server.data(f"{{ task_run(where: {where}) {SELECTION} }}")["task_run"]
    assert sorted(map(_key, rows)) == sorted(expected)


@pytest.mark.parametrize(("where", "expected"), TASK_RUN_CASES)
def test_task_run_filter_as_variable(seeded: Any, where: str, expected: set[str]) -> None:
    server, _ = seeded
    variables = {"where": _literal_to_json(where)}
    query = f"query ($where: task_run_bool_exp) {{ task_run(where: $where) {SELECTION} }}"
    assert sorted(map(_key, server.data(query, variables)["task_run"])) == sorted(expected)


def _literal_to_json(literal: str) -> Any:
    """The GraphQL literals above are JSON once their keys are quoted."""
    import re

    return json.loads(re.sub(r"([{,]\s*)(\w+):", r'\1"\2":', literal))


FLOW_RUN_CASES: list[tuple[str, set[str]]] = [
    # jsonb
    ('{parameters: {_eq: {name: "marvin"}}}', {"happy"}),
    ('{parameters: {_neq: {name: "marvin"}}}', {"sad", "busy", "child"}),
    ('{parameters: {_in: [{name: "marvin"}, {name: "arthur"}]}}', {"happy", "sad"}),
    ('{parameters: {_nin: [{name: "marvin"}, {}]}}', {"sad"}),
    ('{labels: {_eq: ["dev"]}}', {"happy"}),
    ('{labels: {_eq: ["dev", "prod"]}}', {"busy"}),
    ("{serialized_state: {_is_null: false}}", {"happy"}),
    # uuid, including a null column
    ("{parent_task_run_id: {_is_null: false}}", {"child"}),
    ("{parent_task_run_id: {_is_null: true}}", {"happy", "sad", "busy"}),
    # list relationships: "some related row matches", without repeating the parent
    ('{task_runs: {state: {_eq: "Failed"}}}', {"sad", "busy"}),
    ('{_not: {task_runs: {state: {_neq: "Completed"}}}}', {"happy", "child"}),
    ("{task_runs: {}}", {"happy", "sad", "busy"}),
    ('{task_runs: {task: {slug: {_like: "trans%"}}}}', {"busy"}),
    ('{states: {state: {_eq: "Running"}}}', {"happy"}),
    ('{logs: {message: {_eq: "boom"}}}', {"sad"}),
    ('{flow: {tasks: {tags: {_eq: ["greeting"]}}}}', {"happy", "sad", "child"}),
    ('{idempotency_key: {_eq: "k1"}}', {"happy"}),
]


@pytest.mark.parametrize(("where", "expected"), FLOW_RUN_CASES)
def test_flow_run_filter(seeded: Any, where: str, expected: set[str]) -> None:
    server, _ = seeded
    rows = server.data(f"{{ flow_run(where: {where}) {{ name }} }}")["flow_run"]
    assert sorted(row["name"] for row in rows) == sorted(expected)


def test_uuid_comparisons(seeded: Any) -> None:
    server, data = seeded
    happy, sad = (str(data.flow_runs[name].id) for name in ("happy", "sad"))
    query = "query ($c: uuid_comparison_exp) { task_run(where: {flow_run_id: $c}) { id } }"

    def count(comparison: dict[str, Any]) -> int:
        return len(server.data(query, {"c": comparison})["task_run"])

    assert count({"_eq": happy}) == 3
    assert count({"_neq": happy}) == 9
    assert count({"_in": [happy, sad]}) == 6
    assert count({"_nin": [happy]}) == 9
    ordered = sorted(str(row.id) for row in data.flow_runs.values() if row.name != "child")
    # uuids order the same way on both databases (byte order = hex text order)
    assert count({"_gt": ordered[0]}) + count({"_lte": ordered[0]}) == 12


def test_filters_on_every_table(seeded: Any) -> None:
    server, _ = seeded
    data = server.data(
        """{
          flow(where: {tasks: {mapped: {_eq: true}}}) { name }
          task(where: {flow: {name: {_eq: "hello"}}, max_retries: {_gt: 0}}) { slug }
          flow_run_state(where: {flow_run: {name: {_eq: "happy"}}, version: {_gte: 2}}) { state }
          task_run_state(where: {result: {_is_null: false}}) { state result }
          log(where: {task_run: {flow_run: {name: {_eq: "happy"}}}}) { message level }
        }"""
    )
    assert data["flow"] == [{"name": "etl"}]
    assert data["task"] == [{"slug": "say_hello-1"}]
    assert sorted(r["state"] for r in data["flow_run_state"]) == ["Completed", "Running"]
    assert data["task_run_state"] == [
        {"state": "Completed", "result": {"location": "/results/x", "serializer": "pickle"}}
    ]
    assert data["log"] == [{"message": "hello marvin", "level": 20}]
