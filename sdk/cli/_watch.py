"""Following a flow run from the terminal: its state changes, its children, its logs.

``watch`` wakes when the run's event stream says it changed (``Wakes``), and polls where the
server streams nothing; ``logs`` polls. Polling is quick while things change and backs off to
every 2 s while nothing does. Every state of the flow run is shown (its history is read, so a quick
Pending -> Running between two polls is not lost); task runs are shown as they are at each
poll, and mapped children as one progress bar.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from sdk import documents
from sdk.cli import _render
from sdk.cli._common import client
from sdk.exceptions import ClientError, InvalidInput, NotFound
from sdk.states import TERMINAL

EPOCH = "1970-01-01T00:00:00+00:00"
# Log records arrive in batches stamped by the process that wrote them, so one may arrive
# after a later-stamped one has been shown: each poll looks this far back, skipping ids seen.
LOG_WINDOW = dt.timedelta(seconds=60)


class Backoff:
    """Sleeps between polls: ``first`` seconds after a change, growing to ``most``."""

    def __init__(self, first: float = 0.2, most: float = 2.0, factor: float = 1.5) -> None:
        self.first, self.most, self.factor = first, most, factor
        self.delay = first

    def wait(self, changed: bool) -> None:
        self.delay = self.first if changed else min(self.delay * self.factor, self.most)
        time.sleep(self.delay)


class Wakes:
    """Sleeps between looks at a run until its event stream says something changed (at
    most ``most`` seconds), taking a burst of events (10,000 mapped children) as one; where
    the server streams nothing, the ``Backoff`` of polling."""

    def __init__(self, run_id: uuid.UUID, most: float = 2.0, gather: float = 0.1) -> None:
        from sdk import subscriptions  # its WebSocket transport loads when a watch needs it

        self.most, self.gather = most, gather
        self.backoff = Backoff(most=most)
        variables = {"flow_run_id": str(run_id)}
        self.stream: subscriptions.Stream | None = subscriptions.Stream(
            client(), documents.FLOW_RUN_EVENTS, variables
        )

    def wait(self, changed: bool) -> None:
        if self.stream is None:
            self.backoff.wait(changed)
            return
        time.sleep(self.gather)  # what commits meanwhile is one look
        try:
            if self.stream.next(timeout=self.most) is not None:
                while self.stream.next(timeout=0) is not None:
                    pass
        except StopIteration:
            return  # the run ended: the next look shows how
        except (ClientError, InvalidInput) as error:
            logging.getLogger("runview.client").debug("polling instead: %s", error)
            self.stream = None

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


def watch(run_id: uuid.UUID, console: Console = _render.console) -> dict[str, Any]:
    """Show the run's changes on ``console`` until it is final; its last row."""
    shown_version = 0
    task_runs: dict[str, tuple[str, int]] = {}
    wakes = Wakes(run_id)
    with (
        contextlib.closing(wakes),
        Progress(
            TextColumn("mapped children"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress,
    ):
        bar = None
        while True:
            data = client().execute(documents.RUN_PROGRESS, {"id": str(run_id)})
            run = data["flow_run_by_pk"]
            if run is None:
                raise NotFound(f"Flow run {str(run_id)!r} no longer exists.")
            changed = False
            for state in run["states"]:
                if state["version"] > shown_version:
                    shown_version, changed = state["version"], True
                    label = f"flow run {run['name']!r} ({run['flow']['name']})"
                    _line(
                        progress,
                        state["timestamp"],
                        label,
                        state["state"],
                        state["type"],
                        state["message"],
                    )
            for row in data["task_run"]:
                seen = (row["state"], row["version"])
                if task_runs.get(row["id"]) != seen:
                    task_runs[row["id"]], changed = seen, True
                    _line(
                        progress,
                        None,
                        row["task"]["slug"],
                        row["state"],
                        row["state_type"],
                        row["state_message"],
                    )
            total = data["children"]["aggregate"]["count"]
            finished = data["finished"]["aggregate"]["count"]
            if total:
                if bar is None:
                    bar = progress.add_task("children", total=total)
                changed |= progress.tasks[0].completed != finished
                progress.update(bar, total=total, completed=finished)
            if run["state_type"] in TERMINAL:
                return dict(run)
            wakes.wait(changed)


def _line(
    progress: Progress,
    timestamp: str | None,
    what: str,
    state: str,
    state_type: str,
    message: str | None,
) -> None:
    at = _render.when(timestamp) if timestamp else time.strftime("%Y-%m-%d %H:%M:%S")
    line = Text.assemble(
        f"{at}  {what}: ", _render.state(state, state_type), f"  {message}" if message else ""
    )
    progress.console.print(line)


def logs(
    run_id: uuid.UUID, level: int, follow: bool, emit: Callable[[dict[str, Any]], None]
) -> None:
    """Hand each log record of the run at ``level`` or above to ``emit``, oldest first;
    with ``follow``, go on until the run is final and its last records are shown."""
    since, seen = EPOCH, dict[str, dt.datetime]()
    backoff = Backoff()
    while True:
        variables = {"flow_run_id": str(run_id), "level": level, "since": since}
        data = client().execute(documents.LOGS_SINCE, variables)
        if data["flow_run_by_pk"] is None:
            raise NotFound(f"No flow run has the id {str(run_id)!r}.")
        new = [row for row in data["log"] if row["id"] not in seen]
        for row in new:
            seen[row["id"]] = dt.datetime.fromisoformat(row["timestamp"])
            emit(row)
        # The run's state was read with its logs, in one statement: a final run has
        # shipped all its records before proposing its final state.
        if not follow or data["flow_run_by_pk"]["state_type"] in TERMINAL:
            return
        if seen:
            horizon = max(seen.values()) - LOG_WINDOW
            seen = {key: stamp for key, stamp in seen.items() if stamp >= horizon}
            since = horizon.isoformat()
        backoff.wait(bool(new))


def log_line(row: dict[str, Any]) -> str:
    level = logging.getLevelName(row["level"])
    return f"{_render.when(row['timestamp'])} {level:<8} {row['name']}  {row['message']}"
