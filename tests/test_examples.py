"""Every script in examples/ runs against a real server and exits cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))
# What each example must print, given the dataset of tests/dataset.py.
EXPECTED = {
    "query_task_runs.py": ["6 task runs", "transform-1[2]", "load-1", "Pending"],
}


def test_every_example_has_expectations() -> None:
    assert sorted(EXPECTED) == [path.name for path in EXAMPLES]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_example_runs(seeded: Any, example: Path) -> None:
    server, data = seeded
    env = {**os.environ, "RUNVIEW_API_URL": f"{server.url}/graphql"}
    args = [str(data.flow_runs["busy"].id)]
    result = subprocess.run(
        [sys.executable, str(example), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for fragment in EXPECTED[example.name]:
        assert fragment in result.stdout
