"""``runview register``: the flows of a file or module recorded with absolute entrypoints;
the same code twice changes nothing, changed code bumps the version."""

from __future__ import annotations

import runpy
from pathlib import Path

from tests.sdk.cli.conftest import Cli


def test_register_records_every_flow_of_a_file(cli: Cli) -> None:
    table = cli("register", "flows.py").stdout
    path = cli.cwd / "flows.py"
    for name in ("hello", "checks", "graph"):
        assert f"{path}:{name}" in table
    assert table.count("new") == 3

    again = cli.json("register", "flows.py")
    assert {(r["name"], r["version"], r["change"]) for r in again} == {
        ("hello", 1, "unchanged"),
        ("checks", 1, "unchanged"),
        ("graph", 1, "unchanged"),
    }
    graph = next(r for r in again if r["name"] == "graph")
    assert graph["tasks"] == ["inc-1"] and graph["entrypoint"] == f"{path}:graph"

    path.write_text(path.read_text() + "\n# a change\n")
    changed = cli.json("register", f"{path}:hello", "--label", "gpu")
    assert [(r["name"], r["version"], r["change"], r["labels"]) for r in changed] == [
        ("hello", 2, "updated", ["gpu"])
    ]
    flows = {r["name"]: r for r in cli.json("flow", "ls")}
    assert flows["hello"]["version"] == 2 and flows["checks"]["version"] == 1


def test_a_registered_flow_gives_its_runs_its_labels(cli: Cli) -> None:
    cli("register", "flows.py:checks", "--label", "gpu", "--label", "big")
    created = cli.json("flow-run", "create", "checks")
    [run] = cli.json("flow-run", "ls")
    assert run["id"] == created["id"] and run["labels"] == ["gpu", "big"]
    own = cli.json("flow-run", "create", "checks", "--label", "small")
    assert cli.json("flow-run", "inspect", own["id"])["flow_run"]["labels"] == ["small"]


def test_running_a_flow_in_process_keeps_the_registered_entrypoint(cli: Cli) -> None:
    elsewhere = cli.cwd / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "copy.py").write_text((cli.cwd / "flows.py").read_text())
    cli("register", "flows.py")
    # The same flow, run from another file: the runtime records where it runs only for a
    # flow that has no entrypoint yet.
    found = runpy.run_path(str(elsewhere / "copy.py"))["hello"]
    found.client = cli.client
    assert found(name="x", return_state=True).is_completed()
    [hello] = [r for r in cli.json("flow", "ls") if r["name"] == "hello"]
    assert hello["entrypoint"] == f"{cli.cwd / 'flows.py'}:hello"
    assert hello["version"] == 1


def test_register_a_module_by_name(cli: Cli) -> None:
    package = cli.cwd / "pipelines"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "etl.py").write_text((cli.cwd / "flows.py").read_text())
    [row] = cli.json("register", "pipelines.etl:graph")
    assert row["entrypoint"] == "pipelines.etl:graph" and row["change"] == "new"


def test_register_errors_are_one_line(cli: Cli, tmp_path: Path) -> None:
    assert "There is no file 'missing.py'" in cli.error("register", "missing.py")
    (cli.cwd / "empty.py").write_text("x = 1\n")
    assert "defines no flows" in cli.error("register", "empty.py")
    line = cli.error("register", "flows.py:nothing")
    assert "has no flow 'nothing'; it has: checks, graph, hello" in line
    (cli.cwd / "broken.py").write_text("import sdk\n\n1 / 0\n")
    line = cli.error("register", "broken.py")
    assert "ZeroDivisionError: division by zero" in line and "broken.py:3" in line
    assert "There is no module 'no.such.module'" in cli.error("register", "no.such.module")
    assert "Missing argument 'FILE[:FLOW]'" in cli.error("register", code=2)
