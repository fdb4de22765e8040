"""``runview agent start``: run the flow runs that are due, saying what happens to each.

The agent reports on the ``runview.agent`` logger (see ``sdk.agent``); this command prints
those records, one line each: every run claimed, every run's outcome. The flows' own run
logs show on stderr as usual (``sdk.runtime.logs``). Nothing reaches the user as a
traceback: the agent turns a failure in one run, or in claiming, into a line and goes on;
an error before it starts goes to ``sdk.cli.main``, which prints it as one line.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

agent_app = typer.Typer(help="Run flow runs that are due.", no_args_is_help=True)
console = Console(soft_wrap=True)

STYLES = {logging.WARNING: "yellow", logging.ERROR: "bold red"}


class ConsoleLines(logging.Handler):
    """Prints each agent record as one line: its time and its message."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
            style = STYLES.get(record.levelno, "")
            # Text, not markup: messages hold brackets (labels, ['x']) that are not styles.
            console.print(Text(f"{stamp} {record.getMessage()}", style=style))
        except Exception:
            self.handleError(record)


@agent_app.command("start")
def start(
    label: Annotated[
        list[str] | None, typer.Option("--label", help="A label of this agent (repeatable).")
    ] = None,
    poll_interval: Annotated[float, typer.Option(help="Seconds between polls when idle.")] = 2.0,
) -> None:
    """Claim due flow runs whose labels this agent has, and run them, until interrupted."""
    from sdk.agent import Agent, logger

    handler = ConsoleLines()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # these lines are printed here, not again by a root handler
    try:
        agent = Agent(labels=label or [], poll_interval=poll_interval)
        console.print(
            Text(f"runview agent on {agent.client!r}, labels {label or []}; Ctrl-C stops it")
        )
        agent.start()
    except KeyboardInterrupt:
        console.print("agent stopped")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
