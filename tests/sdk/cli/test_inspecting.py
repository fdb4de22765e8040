"""Finding runs and reading their states, logs and results from the terminal, on each
database, over HTTP and embedded. These tests only read what ``recorded`` made."""

from __future__ import annotations

from tests.sdk.cli.conftest import Cli


def test_flow_ls_lists_the_registered_flows(recorded: Cli) -> None:
    flows = {row["name"]: row for row in recorded.json("flow", "ls")}
    assert set(flows) == {"hello", "checks", "graph"}
    assert flows["graph"]["entrypoint"] == f"{recorded.cwd / 'flows.py'}:graph"
    assert [t["slug"] for t in flows["graph"]["tasks"]] == ["inc-1"]
    table = recorded("flow", "ls").stdout
    assert "hello" in table and f"{recorded.cwd / 'flows.py'}:hello" in table


def test_flow_run_ls_shows_the_newest_first_and_filters(recorded: Cli) -> None:
    runs = recorded.json("flow-run", "ls")
    assert [r["id"] for r in runs] == [recorded.ids["hello"], recorded.ids["checks"]]
    assert [(r["flow"], r["state"]) for r in runs] == [("hello", "Completed"), ("checks", "Failed")]
    assert runs[0]["duration_seconds"] > 0
    assert [r["flow"] for r in recorded.json("flow-run", "ls", "--flow", "checks")] == ["checks"]
    assert [r["flow"] for r in recorded.json("flow-run", "ls", "--state", "failed")] == ["checks"]
    assert len(recorded.json("flow-run", "ls", "--limit", "1")) == 1
    assert recorded.json("flow-run", "ls", "--flow", "graph") == []

    table = recorded("flow-run", "ls").stdout
    assert recorded.ids["hello"][:8] in table and "Completed" in table and "Failed" in table


def test_flow_run_inspect_summarises_mapped_children_and_failures(recorded: Cli) -> None:
    prefix = recorded.ids["checks"][:8]
    report = recorded.json("flow-run", "inspect", prefix)
    assert report["flow_run"]["id"] == recorded.ids["checks"]
    assert report["flow_run"]["state"] == "Failed"
    assert [s["state"] for s in report["states"]] == ["Scheduled", "Pending", "Running", "Failed"]
    [check] = report["task_runs"]
    assert check["slug"] == "check-1"
    assert check["children"] == {"count": 3, "states": {"Completed": 2, "Failed": 1}}
    assert [(f["slug"], f["map_index"]) for f in report["failed"]] == [
        ("check-1", -1),
        ("check-1", 1),
    ]
    assert "item 1 is bad" in report["failed"][1]["message"]

    table = recorded("flow-run", "inspect", recorded.ids["checks"]).stdout
    for expected in ("checks", "Failed", "check-1", "3: Completed 2, Failed 1", "item 1 is bad"):
        assert expected in table, table


def test_flow_run_inspect_of_a_flow_with_parameters(recorded: Cli) -> None:
    report = recorded.json("flow-run", "inspect", recorded.ids["hello"])
    assert report["flow_run"]["parameters"] == {"name": "Arthur"}
    slugs = {t["slug"]: t for t in report["task_runs"]}
    assert set(slugs) == {"say_hello-1", "make_set-1", "inc-1"}
    assert slugs["inc-1"]["children"] == {"count": 3, "states": {"Completed": 3}}
    assert slugs["say_hello-1"]["children"] is None and slugs["say_hello-1"]["run_count"] == 1
    assert report["failed"] == []


def test_flow_run_logs_by_level(recorded: Cli) -> None:
    hello = recorded.ids["hello"]
    lines = recorded("flow-run", "logs", hello).stdout.splitlines()
    assert any("INFO" in line and "Hello, Arthur!" in line for line in lines), lines
    assert any("WARNING" in line and "careful, Arthur" in line for line in lines), lines
    warnings = recorded("flow-run", "logs", hello, "--level", "warning").stdout
    assert "careful, Arthur" in warnings and "Hello, Arthur!" not in warnings
    records = recorded.json("flow-run", "logs", hello, "--level", "30")
    assert [r["message"] for r in records] == ["careful, Arthur"]
    # Following a finished run shows what there is and returns.
    followed = recorded("flow-run", "logs", hello[:8], "--follow", timeout=30).stdout
    assert "Hello, Arthur!" in followed


def test_flow_run_watch_of_a_finished_run_shows_its_states(recorded: Cli) -> None:
    completed = recorded("flow-run", "watch", recorded.ids["hello"]).stdout
    for state in ("Scheduled", "Pending", "Running", "Completed"):
        assert state in completed
    failed = recorded("flow-run", "watch", recorded.ids["checks"], code=1)
    assert "Failed" in failed.stdout
    assert failed.stderr.strip().startswith("runview: flow run") and "ended Failed" in failed.stderr


def test_task_run_ls_and_inspect(recorded: Cli) -> None:
    rows = recorded.json("task-run", "ls", recorded.ids["checks"])
    assert [(r["slug"], r["map_index"], r["state"]) for r in rows] == [
        ("check-1", -1, "Failed"),
        ("check-1", 0, "Completed"),
        ("check-1", 1, "Failed"),
        ("check-1", 2, "Completed"),
    ]
    failed = recorded.json("task-run", "ls", recorded.ids["checks"], "--state", "Failed")
    assert [r["map_index"] for r in failed] == [-1, 1]

    report = recorded.json("task-run", "inspect", recorded.ids["hello"], "say_hello-1")
    assert report["state"] == "Completed" and report["run_count"] == 1
    assert [s["state"] for s in report["states"]] == ["Pending", "Running", "Completed"]
    assert report["result"]["serializer"] == "pickle"
    assert report["result"]["location"].startswith(str(recorded.cwd / "results"))
    child = recorded.json(
        "task-run", "inspect", recorded.ids["checks"], "check-1", "--map-index", "1"
    )
    assert child["state"] == "Failed" and "item 1 is bad" in child["message"]

    table = recorded("task-run", "inspect", recorded.ids["hello"], "say_hello-1").stdout
    assert "say_hello-1" in table and report["result"]["location"] in table


def test_task_run_result_loads_values_from_their_storage(recorded: Cli) -> None:
    hello = recorded.ids["hello"]
    assert recorded.json("task-run", "result", hello, "say_hello-1") == "Hello, Arthur!"
    assert recorded.json("task-run", "result", hello, "inc-1") == [1, 2, 3]
    assert recorded.json("task-run", "result", hello, "inc-1", "--map-index", "2") == 3
    assert recorded("task-run", "result", hello, "make_set-1").stdout.strip() == "{1, 2}"
    assert "'Hello, Arthur!'" in recorded("task-run", "result", hello[:8], "say_hello-1").stdout


def test_task_run_errors_are_one_line(recorded: Cli) -> None:
    hello = recorded.ids["hello"]
    assert "has no task run 'nope-1'" in recorded.error("task-run", "result", hello, "nope-1")
    line = recorded.error("task-run", "result", hello, "make_set-1", "--output", "json")
    assert "is a set, which has no JSON form" in line
    line = recorded.error(
        "task-run", "result", recorded.ids["checks"], "check-1", "--map-index", "1"
    )
    assert "Failed" in line and "without a result location" in line
    assert "--map-index" in recorded.error(
        "task-run", "inspect", hello, "inc-1", "--map-index", "-2", code=2
    )
