"""``runview register FILE[:FLOW]``: record the flows of a file or module, for agents to run."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from sdk import documents
from sdk.cli import _render
from sdk.cli._common import Output, OutputOption, client, print_json
from sdk.entrypoints import load_flows, parse_target, source_hash


def register(
    target: Annotated[
        str,
        typer.Argument(
            metavar="FILE[:FLOW]",
            help="A Python file (or package.module), and optionally the one flow to register.",
            show_default=False,
        ),
    ],
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="A label the flow's runs get (repeatable); agents need it."),
    ] = None,
    output: OutputOption = Output.table,
) -> None:
    """Record every flow FILE defines (or the one named) with its absolute entrypoint.

    Registering unchanged code changes nothing; changed code, labels or tasks bump the
    flow's version. An agent (`runview agent start`) then runs the flow's runs.
    """
    parsed = parse_target(target)
    flows = load_flows(parsed)
    digest = source_hash(parsed)
    names = [flow.name for _, flow in flows]
    before = {row["name"]: row["version"] for row in _flows(names)}
    for entrypoint, flow in flows:
        flow.client = client()
        flow.register(entrypoint, labels=label, source_hash=digest)
    rows = [_row(row, before.get(row["name"])) for row in _flows(names)]
    if output is Output.json:
        print_json(rows)
        return
    _render.console.print(
        _render.table(
            None,
            ["flow", "version", "", "entrypoint", "labels", "tasks"],
            (
                [
                    r["name"],
                    r["version"],
                    r["change"],
                    r["entrypoint"],
                    ", ".join(r["labels"]) or "-",
                    ", ".join(r["tasks"]) or "(learned when it runs)",
                ]
                for r in rows
            ),
        )
    )


def _flows(names: list[str]) -> list[dict[str, Any]]:
    where = {"name": {"_in": names}}
    rows: list[dict[str, Any]] = client().execute(documents.FLOWS, {"where": where})["flow"]
    return rows


def _row(row: dict[str, Any], version_before: int | None) -> dict[str, Any]:
    if version_before is None:
        change = "new"
    elif version_before == row["version"]:
        change = "unchanged"
    else:
        change = "updated"
    return {
        "id": row["id"],
        "name": row["name"],
        "version": row["version"],
        "change": change,
        "entrypoint": row["entrypoint"],
        "labels": row["labels"],
        "tasks": [task["slug"] for task in row["tasks"]],
    }
