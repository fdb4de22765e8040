"""``runview agent start``: run the flow runs that are due, saying what happens to each.

The agent reports on the ``runview.agent`` logger (see ``sdk.agent``); this command prints
those records, one line each: every run claimed, every run's outcome. Each run's process
writes to this command's stdout and stderr, so the flows' prints and run logs show as
usual (``sdk.runtime.logs``). Nothing reaches the user as a traceback: the agent turns a
failure in one run, or in claiming, into a line and goes on; an error before it starts goes
to ``sdk.cli.main``, which prints it as one line.

SIGTERM or Ctrl-C (SIGINT) stops the agent the graceful way: it claims no more runs, gives
the running ones ``--grace-seconds`` to finish, then stops their processes and ends those
runs Crashed. A second signal changes nothing: the grace period is bounded already.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

agent_app = typer.Typer(help="Run flow runs that are due.", no_args_is_help=True)
console = Console(soft_wrap=True)

STYLES = {logging.WARNING: "yellow", logging.ERROR: "bold red"}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
    limit: Annotated[
        int, typer.Option(min=1, help="How many flow runs it runs at once, each in its process.")
    ] = 1,
    grace_seconds: Annotated[
        float,
        typer.Option(min=0, help="Seconds running flows get to finish once it is stopped."),
    ] = 20.0,
) -> None:
    """Claim due flow runs whose labels this agent has, and run them, until stopped."""
    from sdk.agent import Agent, logger

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Safe in a handler: the main thread never holds this event's lock (the agent's
        # loop only asks is_set()). The loop notices and stops the graceful way.
        stop.set()

    handler = ConsoleLines()
    client_logger = logging.getLogger("runview.client")  # "retrying for up to 120 s"
    client_logger.addHandler(handler)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # these lines are printed here, not again by a root handler
    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    try:
        agent = Agent(
            labels=label or [],
            poll_interval=poll_interval,
            limit=limit,
            stop_grace_seconds=grace_seconds,
        )
        console.print(
            Text(
                f"runview agent on {agent.client!r}, labels {label or []}, up to {limit} at"
                " once; Ctrl-C stops it"
            )
        )
        agent.start(stop)
        console.print("agent stopped")
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        logger.removeHandler(handler)
        client_logger.removeHandler(handler)
        logger.propagate = True
