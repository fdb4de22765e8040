"""``runview task-run ls|inspect|result``: the task runs of a flow run, and their results."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.pretty import Pretty

from sdk import documents
from sdk.cli import _render
from sdk.cli._common import (
    Output,
    OutputOption,
    client,
    parse_state,
    print_json,
    resolve_flow_run_id,
)
from sdk.exceptions import InvalidInput
from sdk.views import TaskRunView

task_run_app = typer.Typer(help="Task runs: their states, history and results.")

FlowRunId = Annotated[
    str,
    typer.Argument(
        metavar="FLOW_RUN_ID",
        help="A flow run id, or its first 8 or more characters.",
        show_default=False,
    ),
]
Slug = Annotated[
    str,
    typer.Argument(
        metavar="SLUG", help="The task run's slug, '<task name>-<n>'.", show_default=False
    ),
]
MapIndex = Annotated[
    int,
    typer.Option("--map-index", min=-1, help="A mapped child's index; -1: the task run itself."),
]


def _row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "slug": row["task"]["slug"],
        "map_index": row["map_index"],
        "mapped": bool(row["task"]["mapped"]) and row["map_index"] == -1,
        "state": row["state"],
        "state_type": row["state_type"],
        "message": row["state_message"],
        "run_count": row["run_count"],
        "start_time": row["start_time"],
        "end_time": row["end_time"],
        "duration_seconds": _render.seconds(row["start_time"], row["end_time"]),
    }


@task_run_app.command("ls")
def ls(
    flow_run_id: FlowRunId,
    state: Annotated[
        str | None,
        typer.Option("--state", parser=parse_state, help="Only task runs in this state."),
    ] = None,
    output: OutputOption = Output.table,
) -> None:
    """The task runs of a flow run, by slug then map index."""
    where: dict[str, Any] = {"flow_run_id": {"_eq": str(resolve_flow_run_id(flow_run_id))}}
    if state is not None:
        where["state"] = {"_eq": state}
    answer = client().execute(documents.TASK_RUN_ROWS, {"where": where})
    rows = [_row(r) for r in answer["task_run"]]
    if output is Output.json:
        print_json(rows)
        return
    if not rows:
        _render.console.print("No task runs match.")
        return
    _render.console.print(
        _render.table(
            None,
            ["task", "map index", "state", "runs", "start", "duration", "message"],
            (
                [
                    r["slug"],
                    r["map_index"] if r["map_index"] >= 0 else ("mapped" if r["mapped"] else ""),
                    _render.state(r["state"], r["state_type"]),
                    r["run_count"],
                    _render.when(r["start_time"]),
                    _render.duration(r["start_time"], r["end_time"]),
                    r["message"] or "",
                ]
                for r in rows
            ),
        )
    )


def _view(flow_run_id: str, slug: str, map_index: int) -> TaskRunView:
    return TaskRunView.from_task_slug(
        slug, resolve_flow_run_id(flow_run_id), map_index, client=client()
    )


@task_run_app.command("inspect")
def inspect(
    flow_run_id: FlowRunId,
    slug: Slug,
    map_index: MapIndex = -1,
    output: OutputOption = Output.table,
) -> None:
    """A task run: its state, history, run count and result location."""
    view = _view(flow_run_id, slug, map_index)
    detail = client().execute(documents.TASK_RUN_HISTORY, {"id": str(view.task_run_id)})
    row = detail["task_run_by_pk"]
    ref = view.state.result_ref
    report = {
        "id": str(view.task_run_id),
        "flow_run_id": str(view.flow_run_id),
        "slug": view.task_slug,
        "map_index": view.map_index,
        "mapped": view.mapped,
        "state": view.state.name,
        "state_type": view.state.type,
        "message": view.state.message,
        "run_count": view.run_count,
        "cache_key": row["cache_key"] if row else None,
        "start_time": _render.iso(view.start_time),
        "end_time": _render.iso(view.end_time),
        "duration_seconds": _render.seconds(view.start_time, view.end_time),
        "result": ref.to_dict() if ref is not None else None,
        "states": row["states"] if row else [],
    }
    if output is Output.json:
        print_json(report)
        return
    index = f"[{view.map_index}]" if view.map_index >= 0 else (" (mapped)" if view.mapped else "")
    _render.console.print(
        _render.fields(
            [
                ("task run", f"{view.task_slug}{index}  {view.task_run_id}"),
                ("flow run", str(view.flow_run_id)),
                ("state", _render.state(view.state.name, view.state.type)),
                ("message", view.state.message or "-"),
                ("runs", view.run_count),
                ("started", _render.when(report["start_time"])),
                ("ended", _render.when(report["end_time"])),
                ("duration", _render.duration(report["start_time"], report["end_time"])),
                ("result", f"{ref.location} ({ref.serializer})" if ref else "-"),
                ("cache key", report["cache_key"] or "-"),
            ]
        )
    )
    _render.console.print()
    _render.console.print(_render.history(report["states"]))


@task_run_app.command("result")
def result(
    flow_run_id: FlowRunId,
    slug: Slug,
    map_index: MapIndex = -1,
    output: OutputOption = Output.table,
) -> None:
    """Load a task run's result from its storage and print it (a mapped parent: the list)."""
    value = _view(flow_run_id, slug, map_index).get_result()
    if output is Output.table:
        _render.console.print(Pretty(value))
        return
    try:
        text = json.dumps(value, indent=2, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidInput(
            f"The result of {slug!r} is a {type(value).__name__}, which has no JSON form"
            f" ({error}); leave out --output json to see it."
        ) from None
    print(text)
