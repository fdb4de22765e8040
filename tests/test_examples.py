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
