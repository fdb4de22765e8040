"""``runview flow ls``: the registered flows."""

from __future__ import annotations

import typer

from sdk import documents
from sdk.cli import _render
from sdk.cli._common import Output, OutputOption, client, print_json

flow_app = typer.Typer(help="Flows: what can be run.", no_args_is_help=True)


@flow_app.command("ls")
def ls(output: OutputOption = Output.table) -> None:
    """Every flow, by name: its version, entrypoint, labels and tasks."""
    rows = client().execute(documents.FLOWS, {"where": {}})["flow"]
    if output is Output.json:
        print_json(rows)
        return
    _render.console.print(
        _render.table(
            None,
            ["name", "version", "entrypoint", "labels", "tasks", "updated"],
            (
                [
                    row["name"],
                    row["version"],
                    row["entrypoint"] or "- (not registered)",
                    ", ".join(row["labels"]) or "-",
                    len(row["tasks"]),
                    _render.when(row["updated"]),
                ]
                for row in rows
            ),
        )
        if rows
        else "No flows yet: `runview register FILE` records the flows of a file."
    )
