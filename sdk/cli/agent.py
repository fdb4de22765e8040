"""``runview agent start``: run the flow runs that are due."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

agent_app = typer.Typer(help="Run flow runs that are due.", no_args_is_help=True)
console = Console(soft_wrap=True)


@agent_app.command("start")
def start(
    label: Annotated[
        list[str] | None, typer.Option("--label", help="A label of this agent (repeatable).")
    ] = None,
    poll_interval: Annotated[float, typer.Option(help="Seconds between polls when idle.")] = 2.0,
) -> None:
    """Claim due flow runs whose labels this agent has, and run them, until interrupted."""
    from sdk.agent import Agent

    agent = Agent(labels=label or [], poll_interval=poll_interval)
    console.print(f"runview agent on {agent.client!r}, labels {label or []}")
    try:
        agent.start()
    except KeyboardInterrupt:
        console.print("agent stopped")
