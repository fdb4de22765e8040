"""order_by (every direction, nulls placement, several keys, object relationships),
limit/offset at the root and per parent on list relationships, aggregates and _by_pk."""

from __future__ import annotations

from typing import Any

import pytest

START_ORDER = [
    "happy/name-1",
    "happy/capitalize-1",
    "happy/say_hello-1",
    "sad/name-1",
    "sad/capitalize-1",
    "sad/say_hello-1",
    "busy/extract-1",
    "busy/transform-1/-1",
    "busy/transform-1/0",
    "busy/transform-1/1",
    "busy/transform-1/2",
]
NULL_START = "busy/load-1"


def _keys(rows: list[dict[str, Any]]) -> list[str]:
    keys = []
    for row in rows:
        key = f"{row['flow_run']['name']}/{row['task']['slug']}"
        keys.append(key if row["task"]["slug"] != "transform-1" else f"{key}/{row['map_index']}")
    return keys


def _task_runs(server: Any, arguments: str) -> list[str]:
    selection = "{ map_index task { slug } flow_run { name } }"
    return _keys(server.data(f"{{ task_run({arguments}) {selection} }}")["task_run"])


@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        ("asc", [*START_ORDER, NULL_START]),
        ("asc_nulls_last", [*START_ORDER, NULL_START]),
        ("asc_nulls_first", [NULL_START, *START_ORDER]),
        ("desc", [NULL_START, *reversed(START_ORDER)]),
        ("desc_nulls_first", [NULL_START, *reversed(START_ORDER)]),
        ("desc_nulls_last", [*reversed(START_ORDER), NULL_START]),
    ],
)
def test_order_by_directions_and_nulls(seeded: Any, direction: str, expected: list[str]) -> None:
    server, _ = seeded
    assert _task_runs(server, f"order_by: {{start_time: {direction}}}") == expected


def test_order_by_several_keys_in_list_order(seeded: Any) -> None:
    server, _ = seeded
    keys = _task_runs(server, "order_by: [{state: desc}, {start_time: desc}]")
    assert keys == [
        "busy/transform-1/2",  # Running
        "busy/transform-1/-1",
        "busy/load-1",  # Pending
        "busy/transform-1/1",  # Failed
        "sad/say_hello-1",
        "busy/transform-1/0",  # Completed, latest first
        "busy/extract-1",
        "sad/capitalize-1",
        "sad/name-1",
        "happy/say_hello-1",
        "happy/capitalize-1",
        "happy/name-1",
    ]


def test_order_by_an_object_relationship(seeded: Any) -> None:
    server, _ = seeded
    keys = _task_runs(
        server,
        'where: {flow_run: {name: {_eq: "happy"}}}, order_by: [{task: {slug: desc}}]',
    )
    assert keys == ["happy/say_hello-1", "happy/name-1", "happy/capitalize-1"]
    runs = server.data("{ flow_run(order_by: [{flow: {name: asc}}, {name: asc}]) { name } }")
    assert [r["name"] for r in runs["flow_run"]] == ["busy", "child", "happy", "sad"]


def test_limit_and_offset(seeded: Any) -> None:
    server, _ = seeded
    ordering = "order_by: {start_time: asc}"
    assert _task_runs(server, f"{ordering}, limit: 3") == START_ORDER[:3]
    assert _task_runs(server, f"{ordering}, limit: 3, offset: 2") == START_ORDER[2:5]
    assert _task_runs(server, f"{ordering}, offset: 10") == [START_ORDER[10], NULL_START]
    assert _task_runs(server, f"{ordering}, limit: 0") == []
    assert _task_runs(server, f"{ordering}, offset: 50") == []
    # Without an ordering, pages still partition the rows (ties break on the primary key).
    pages = [_task_runs(server, f"limit: 5, offset: {offset}") for offset in (0, 5, 10)]
    assert sorted(sum(pages, [])) == sorted([*START_ORDER, NULL_START])


def test_list_relationship_arguments_apply_per_parent(seeded: Any) -> None:
    server, _ = seeded
    data = server.data(
        """{ flow_run(order_by: {scheduled_start_time: asc}) {
              name
              latest: task_runs(order_by: {start_time: desc_nulls_last}, limit: 2) { task { slug } }
              second: task_runs(order_by: {start_time: asc}, limit: 1, offset: 1) { task { slug } }
              completed: task_runs(where: {state: {_eq: "Completed"}}) { map_index }
              states(order_by: {version: asc}) { state version }
        } }"""
    )["flow_run"]
    assert [run["name"] for run in data] == ["happy", "sad", "busy", "child"]
    slugs = {run["name"]: [t["task"]["slug"] for t in run["latest"]] for run in data}
    assert slugs == {
        "happy": ["say_hello-1", "capitalize-1"],
        "sad": ["say_hello-1", "capitalize-1"],
        "busy": ["transform-1", "transform-1"],
        "child": [],
    }
    second = {run["name"]: [t["task"]["slug"] for t in run["second"]] for run in data}
    assert second == {
        "happy": ["capitalize-1"],
        "sad": ["capitalize-1"],
        "busy": ["transform-1"],
        "child": [],
    }
    assert [len(run["completed"]) for run in data] == [3, 2, 2, 0]
    assert data[0]["states"] == [
        {"state": "Scheduled", "version": 1},
        {"state": "Running", "version": 2},
        {"state": "Completed", "version": 3},
    ]


def test_every_relationship_resolves(seeded: Any) -> None:
    server, data = seeded
    say_hello = str(data.task_runs["happy/say_hello-1/-1"].id)
    answer = server.data(
        """query ($id: uuid!) { task_run_by_pk(id: $id) {
              task { slug flow { name tasks(order_by: {slug: asc}) { slug } flow_runs { name } } }
              flow_run { name flow { name } }
              states(order_by: {version: desc}, limit: 1) { state task_run { id } }
              logs { message flow_run { name } task_run { id } }
        } }""",
        {"id": say_hello},
    )["task_run_by_pk"]
    assert answer["task"]["slug"] == "say_hello-1"
    assert [t["slug"] for t in answer["task"]["flow"]["tasks"]] == [
        "capitalize-1",
        "name-1",
        "say_hello-1",
    ]
    assert sorted(r["name"] for r in answer["task"]["flow"]["flow_runs"]) == [
        "child",
        "happy",
        "sad",
    ]
    assert answer["flow_run"] == {"name": "happy", "flow": {"name": "hello"}}
    assert answer["states"] == [{"state": "Completed", "task_run": {"id": say_hello}}]
    assert answer["logs"] == [
        {"message": "hello marvin", "flow_run": {"name": "happy"}, "task_run": {"id": say_hello}}
    ]
    flow_log = server.data('{ log(where: {message: {_eq: "starting"}}) { task_run { id } } }')
    assert flow_log["log"] == [{"task_run": None}]


def test_aggregate_counts(seeded: Any) -> None:
    server, _ = seeded
    data = server.data(
        """{
          all: task_run_aggregate { aggregate { count } }
          failed: task_run_aggregate(where: {state: {_eq: "Failed"}}) { aggregate { count } }
          none: task_run_aggregate(where: {_or: []}) { aggregate { count } }
          flows: flow_aggregate { aggregate { count } }
          logs: log_aggregate(where: {level: {_gte: 20}}) { aggregate { count } }
        }"""
    )
    counts = {name: value["aggregate"]["count"] for name, value in data.items()}
    assert counts == {"all": 12, "failed": 2, "none": 0, "flows": 2, "logs": 2}


def test_by_pk(seeded: Any) -> None:
    server, data = seeded
    flow = data.flows["etl"]
    answer = server.data(
        "query ($id: uuid!) { flow_by_pk(id: $id) { id name version description } }",
        {"id": str(flow.id)},
    )
    assert answer["flow_by_pk"] == {
        "id": str(flow.id),
        "name": "etl",
        "version": 3,
        "description": None,
    }
    missing = server.data('{ task_run_by_pk(id: "00000000-0000-0000-0000-000000000000") { id } }')
    assert missing == {"task_run_by_pk": None}
