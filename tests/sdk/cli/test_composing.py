"""The composing-flows example as the README tells it: register the child, start an agent,
run the parent; then find the child's run from the terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.sdk.cli.conftest import Cli

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "composing"


def test_a_parent_flow_gets_the_result_of_a_child_an_agent_ran(cli: Cli) -> None:
    [child] = cli.json("register", str(EXAMPLE / "child.py"))
    assert child["entrypoint"] == f"{EXAMPLE / 'child.py'}:child_flow"
    with cli.agent() as agent:
        parent = subprocess.run(
            [sys.executable, str(EXAMPLE / "parent.py")],
            env=cli.env,
            cwd=cli.cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert parent.returncode == 0, parent.stderr
    assert parent.stdout.strip().splitlines()[-1] == "[0, 1, 2, 3, 4]"

    [run] = cli.json("flow-run", "ls", "--flow", "child")
    assert run["state"] == "Completed" and run["parent_task_run_id"] is not None
    assert f"claimed flow run {run['id']} (flow 'child')" in agent.output, agent.output
    assert f"flow run {run['id']} (flow 'child') ended Completed" in agent.output
    assert "Traceback" not in agent.output
    report = cli.json("flow-run", "inspect", run["id"][:8])
    assert [(t["slug"], t["state"]) for t in report["task_runs"]] == [
        ("create_some_data-1", "Completed")
    ]
    shown = cli("flow-run", "inspect", run["id"]).stdout
    assert "create_some_data-1" in shown and "Completed" in shown
    result = cli.json("task-run", "result", run["id"], "create_some_data-1")
    assert result == [0, 1, 2, 3, 4]
    [parent_run] = cli.json("flow-run", "ls", "--flow", "parent")
    assert parent_run["state"] == "Completed"
