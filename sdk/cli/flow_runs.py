"""``runview flow-run ls|inspect|logs|watch|cancel|create``: find, follow and steer flow runs."""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter, defaultdict
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from sdk import documents
from sdk.cli import _render, _watch
from sdk.cli._common import (
    Output,
    OutputOption,
    client,
    parse_level,
    parse_state,
    print_json,
    resolve_flow_run_id,
)
from sdk.exceptions import InvalidInput, NotFound
from sdk.views import FlowRunView

flow_run_app = typer.Typer(help="Flow runs: find, inspect, follow, start, cancel.")

RunId = Annotated[
    str,
    typer.Argument(
        metavar="ID", help="A flow run id, or its first 8 or more characters.", show_default=False
    ),
]


def _run_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "flow": row["flow"]["name"],
        "state": row["state"],
        "state_type": row["state_type"],
        "message": row["state_message"],
        "labels": row["labels"],
        "created": row["created"],
        "scheduled_start_time": row["scheduled_start_time"],
        "start_time": row["start_time"],
        "end_time": row["end_time"],
        "duration_seconds": _render.seconds(row["start_time"], row["end_time"]),
        "parent_task_run_id": row["parent_task_run_id"],
    }


def _flow_id(name: str) -> str:
    rows = client().execute(documents.FLOWS, {"where": {"name": {"_eq": name}}})["flow"]
    if not rows:
        every = client().execute(documents.FLOWS, {"where": {}})["flow"]
        have = ", ".join(repr(row["name"]) for row in every) or "none yet"
        raise NotFound(f"No flow is named {name!r}; the flows are: {have}.")
    return str(rows[0]["id"])


@flow_run_app.command("ls")
def ls(
    flow: Annotated[str | None, typer.Option("--flow", help="Only runs of this flow.")] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state", parser=parse_state, help="Only runs in this state (Failed, Late, ...)."
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many runs.")] = 20,
    output: OutputOption = Output.table,
) -> None:
    """Flow runs, newest first: id, name, flow, state, start and duration."""
    where: dict[str, Any] = {}
    if state is not None:
        where["state"] = {"_eq": state}
    if flow is not None:
        where["flow_id"] = {"_eq": _flow_id(flow)}
    variables = {"where": where, "limit": limit}
    rows = [_run_row(r) for r in client().execute(documents.FLOW_RUN_ROWS, variables)["flow_run"]]
    if output is Output.json:
        print_json(rows)
        return
    if not rows:
        _render.console.print("No flow runs match.")
        return
    _render.console.print(
        _render.table(
            None,
            ["id", "name", "flow", "state", "start", "duration"],
            (
                [
                    _render.short(r["id"]),
                    r["name"],
                    r["flow"],
                    _render.state(r["state"], r["state_type"]),
                    _render.when(r["start_time"]),
                    _render.duration(r["start_time"], r["end_time"]),
                ]
                for r in rows
            ),
        )
    )


@flow_run_app.command("inspect")
def inspect(run_id: RunId, output: OutputOption = Output.table) -> None:
    """A flow run: its states, its task runs (mapped children counted by state), failures."""
    view = FlowRunView.from_flow_run_id(resolve_flow_run_id(run_id), client=client())
    where = {"flow_run_id": {"_eq": str(view.flow_run_id)}}
    task_runs = client().execute(documents.TASK_RUN_ROWS, {"where": where})["task_run"]
    report = _inspection(view, task_runs)
    if output is Output.json:
        print_json(report)
        return
    run = report["flow_run"]
    _render.console.print(
        _render.fields(
            [
                ("flow run", f"{run['name']}  {run['id']}"),
                ("flow", run["flow"]),
                ("state", _render.state(run["state"], run["state_type"])),
                ("message", run["message"] or "-"),
                ("parameters", json.dumps(run["parameters"])),
                ("labels", ", ".join(run["labels"]) or "-"),
                ("scheduled", _render.when(run["scheduled_start_time"])),
                ("started", _render.when(run["start_time"])),
                ("ended", _render.when(run["end_time"])),
                ("duration", _render.duration(run["start_time"], run["end_time"])),
                ("parent task run", run["parent_task_run_id"] or "-"),
            ]
        )
    )
    _render.console.print()
    _render.console.print(_render.history(report["states"]))
    _render.console.print()
    if report["task_runs"]:
        _render.console.print(
            _render.table(
                "Task runs",
                ["task", "state", "runs", "start", "duration", "mapped children"],
                (
                    [
                        t["slug"],
                        _render.state(t["state"], t["state_type"]),
                        t["run_count"],
                        _render.when(t["start_time"]),
                        _render.duration(t["start_time"], t["end_time"]),
                        _counts(t["children"]) if t["children"] is not None else "",
                    ]
                    for t in report["task_runs"]
                ),
            )
        )
    else:
        _render.console.print("No task runs.")
    if report["failed"]:
        _render.console.print()
        _render.console.print(
            _render.table(
                "Failed task runs",
                ["task", "map index", "state", "message"],
                (
                    [
                        f["slug"],
                        f["map_index"] if f["map_index"] >= 0 else "",
                        _render.state(f["state"], f["state_type"]),
                        f["message"] or "",
                    ]
                    for f in report["failed"]
                ),
            )
        )


def _counts(children: dict[str, Any]) -> str:
    by_state = ", ".join(f"{name} {count:,}" for name, count in children["states"].items())
    return f"{children['count']:,}: {by_state}" if children["count"] else "none"


def _inspection(view: FlowRunView, task_runs: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``inspect`` shows, as plain data (the JSON output)."""
    state = view.state
    run = {
        "id": str(view.flow_run_id),
        "name": view.name,
        "flow": view.flow_name,
        "state": state.name,
        "state_type": state.type,
        "message": state.message,
        "parameters": view.parameters,
        "labels": view.labels,
        "scheduled_start_time": _render.iso(view.scheduled_start_time),
        "start_time": _render.iso(view.start_time),
        "end_time": _render.iso(view.end_time),
        "duration_seconds": _render.seconds(view.start_time, view.end_time),
        "parent_task_run_id": str(view.parent_task_run_id) if view.parent_task_run_id else None,
    }
    states = [
        {
            "version": version,
            "timestamp": _render.iso(s.timestamp),
            "state": s.name,
            "type": s.type,
            "message": s.message,
        }
        for version, s in enumerate(view.states, start=1)
    ]
    children: dict[str, list[dict[str, Any]]] = defaultdict(list)
    groups: list[dict[str, Any]] = []
    for row in task_runs:
        if row["map_index"] >= 0:
            children[row["task"]["slug"]].append(row)
        else:
            groups.append(row)
    summary = []
    for row in groups:
        slug = row["task"]["slug"]
        kids = children.pop(slug, None) if row["task"]["mapped"] else None
        summary.append(
            {
                "slug": slug,
                "id": row["id"],
                "state": row["state"],
                "state_type": row["state_type"],
                "message": row["state_message"],
                "run_count": row["run_count"],
                "start_time": row["start_time"],
                "end_time": row["end_time"],
                "duration_seconds": _render.seconds(row["start_time"], row["end_time"]),
                "children": None
                if kids is None
                else {"count": len(kids), "states": dict(Counter(k["state"] for k in kids))},
            }
        )
    failed = [
        {
            "slug": row["task"]["slug"],
            "map_index": row["map_index"],
            "id": row["id"],
            "state": row["state"],
            "state_type": row["state_type"],
            "message": row["state_message"],
        }
        for row in task_runs
        if row["state_type"] in ("FAILED", "CRASHED")
    ]
    return {"flow_run": run, "states": states, "task_runs": summary, "failed": failed}


@flow_run_app.command("logs")
def logs(
    run_id: RunId,
    level: Annotated[
        int,
        typer.Option(
            "--level", parser=parse_level, help="The lowest level shown: a name or a number."
        ),
    ] = logging.DEBUG,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Go on showing records until the run ends.")
    ] = False,
    output: Annotated[
        Output,
        typer.Option(
            "--output",
            help="table for people; json: one JSON array (with --follow, one JSON object a line).",
        ),
    ] = Output.table,
) -> None:
    """The log records of a flow run and its task runs, oldest first."""
    flow_run_id, lowest = resolve_flow_run_id(run_id), level
    if output is Output.json and not follow:
        collected: list[dict[str, Any]] = []
        _watch.logs(flow_run_id, lowest, False, collected.append)
        print_json(collected)
        return
    if output is Output.json:
        _watch.logs(flow_run_id, lowest, True, lambda row: print(json.dumps(row), flush=True))
        return
    _watch.logs(
        flow_run_id,
        lowest,
        follow,
        lambda row: _render.console.print(_watch.log_line(row), markup=False),
    )


@flow_run_app.command("watch")
def watch(run_id: RunId) -> None:
    """Show a flow run's state changes as they happen, until it is finished."""
    run = _watch.watch(resolve_flow_run_id(run_id))
    _exit_with(run)


def _exit_with(run: dict[str, Any]) -> None:
    """Exit 0 for a Completed run, 1 (with its state and message on stderr) otherwise."""
    if run["state_type"] != "COMPLETED":
        message = f": {run['state_message']}" if run["state_message"] else ""
        typer.echo(f"runview: flow run {run['id']} ended {run['state']}{message}", err=True)
        raise typer.Exit(1)


# How a Cancelling run stops, in the words of `flow-run cancel`.
STOPPING = (
    "an agent stops its process at the next heartbeat; a flow run in your own process stops"
    " at its next task call"
)


@flow_run_app.command("cancel")
def cancel(run_id: RunId, output: OutputOption = Output.table) -> None:
    """Cancel a flow run: at once if it has not started; a running one is stopped by its
    agent at the next heartbeat, or stops itself at its next task call."""
    flow_run_id = resolve_flow_run_id(run_id)
    answer = client().execute(
        documents.CANCEL_FLOW_RUN, {"input": {"flow_run_id": str(flow_run_id)}}
    )["cancel_flow_run"]
    state = answer["state"]
    if answer["status"] != "ACCEPTED":
        # The server's message names the state the run is in.
        raise InvalidInput(
            f"Flow run {str(flow_run_id)!r} cannot be cancelled: {answer['message']}"
        )
    if output is Output.json:
        print_json({"id": str(flow_run_id), "state": state["name"], "state_type": state["type"]})
        return
    after = "" if state["type"] == "CANCELLED" else f" ({STOPPING})"
    _render.console.print(
        Text.assemble(
            f"flow run {flow_run_id}: ", _render.state(state["name"], state["type"]), after
        )
    )


def _parameter(text: str) -> tuple[str, Any]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise typer.BadParameter(f"{text!r} is not NAME=VALUE.", param_hint="'--param'")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value  # not JSON: the text itself


@flow_run_app.command("create")
def create(
    flow_name: Annotated[
        str, typer.Argument(metavar="FLOW_NAME", help="The registered flow to run.")
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param", help="NAME=VALUE, repeatable; VALUE is read as JSON when it is JSON."
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="A label of the run (repeatable); default: the flow's."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="The run's name.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Watch the run until it ends; exit 1 unless Completed.")
    ] = False,
    output: OutputOption = Output.table,
) -> None:
    """Schedule a run of a registered flow, for an agent to run."""
    parameters = dict(_parameter(text) for text in param or [])
    _flow_id(flow_name)  # a clear error for an unknown flow, naming the ones there are
    answer = client().execute(
        documents.CREATE_FLOW_RUN,
        {
            "input": {
                "flow_name": flow_name,
                "parameters": parameters,
                "labels": label,
                "flow_run_name": name,
                "idempotency_key": str(uuid.uuid4()),
            }
        },
    )
    flow_run_id = answer["create_flow_run"]["id"]
    if output is Output.json and not wait:
        print_json({"id": flow_run_id, "flow": flow_name, "parameters": parameters})
        return
    if output is Output.table:
        _render.console.print(f"flow run {flow_run_id} of flow {flow_name!r} is Scheduled.")
    if wait:
        # With --output json, stdout holds only the JSON document; the changes go to stderr.
        shown = _render.console if output is Output.table else Console(stderr=True)
        run = _watch.watch(uuid.UUID(flow_run_id), shown)
        if output is Output.json:
            print_json({"id": flow_run_id, "flow": flow_name, "state": run["state"]})
        _exit_with(run)
