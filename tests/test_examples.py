"""Every script in examples/ runs against a real server and exits cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Server, run, seed_database

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))
# What each example must print, given the dataset of tests/dataset.py.
EXPECTED = {
    "query_task_runs.py": ["6 task runs", "transform-1[2]", "load-1", "Pending"],
    "hello_world.py": [
        "Hello, Marvin!",
        "Scheduled -> Pending -> Running -> Completed",
        "say_hello-1: Completed, result 'Hello, Marvin!'",
        "log runview.runs.say_hello-1: Hello, Marvin!",
    ],
    "mapped_results.py": [
        "eager: inc-1 -> [1, 2, 3, 4, 5, 6]",
        "graph: inc-1 -> [1, 2, 3, 4, 5, 6]",
        "graph: inc-1[2] -> 3",
    ],
    "custom_result_location.py": [
        "total: 42",
        "total-1.json as json",
        "file holds: 42",
        "read back: 42",
    ],
    "states_and_futures.py": [
        "data: 2; state: Completed(type=COMPLETED) -> 2; future: Completed(type=COMPLETED) -> 2",
        "returns None with a failed task run: Failed(type=FAILED, message='1 of 1 task runs",
        "returns a State: Failed(type=FAILED, message='the flow said so')",
    ],
    "seed_task_results.py": [
        "foo-1: foobar!",
        "inc-1: [1, 2, 3, 4, 5, 6]",
        "inc-1[2]: 3",
        "child 5: 6",
    ],
}
# Arguments per example (the flow run to show, for those that show one).
ARGUMENTS = {"query_task_runs.py": lambda data: [str(data.flow_runs["busy"].id)]}


def test_every_example_has_expectations() -> None:
    assert sorted(EXPECTED) == [path.name for path in EXAMPLES]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_example_runs(server: Server, example: Path, tmp_path: Path) -> None:
    # A database of its own, with the fixed dataset: some examples record runs.
    data = run(seed_database(server.database_url))
    env = {**os.environ, "RUNVIEW_API_URL": f"{server.url}/graphql", "RUNVIEW_HOME": str(tmp_path)}
    args = ARGUMENTS.get(example.name, lambda _: [])(data)
    result = subprocess.run(
        [sys.executable, str(example), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for fragment in EXPECTED[example.name]:
        assert fragment in result.stdout


def test_an_example_records_embedded_and_a_server_started_later_serves_it(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "RUNVIEW_HOME": str(tmp_path)}
    env.pop("RUNVIEW_API_URL", None)
    env.pop("RUNVIEW_DATABASE_URL", None)
    example = next(path for path in EXAMPLES if path.name == "hello_world.py")
    result = subprocess.run(
        [sys.executable, str(example)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "runview.db").exists()

    server = Server(f"sqlite+aiosqlite:///{tmp_path / 'runview.db'}").start()
    try:
        runs = server.data(
            "{ flow_run { state flow { name } task_runs(order_by: {start_time: asc})"
            " { state task { slug } } } }"
        )["flow_run"]
    finally:
        server.stop()
    assert runs == [
        {
            "state": "Completed",
            "flow": {"name": "hello"},
            "task_runs": [
                {"state": "Completed", "task": {"slug": "capitalize-1"}},
                {"state": "Completed", "task": {"slug": "say_hello-1"}},
            ],
        }
    ]
