"""How the command line shows runs to people: times, durations, coloured states, tables.

Only presentation lives here; commands fetch the data and pick ``--output``.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

# soft_wrap: an id or a URL split over two lines cannot be copied. Piped into a file or
# another program, tables keep their natural width instead of folding at 80 columns.
console = Console(soft_wrap=True, highlight=False, width=None if sys.stdout.isatty() else 1000)

STYLES = {
    "SCHEDULED": "yellow",
    "PENDING": "yellow",
    "RUNNING": "blue",
    "PAUSED": "magenta",
    "CANCELLING": "magenta",
    "COMPLETED": "green",
    "FAILED": "red",
    "CRASHED": "red",
    "CANCELLED": "magenta",
}


def state(name: str | None, state_type: str | None) -> Text:
    return Text(name or "-", style=STYLES.get(state_type or "", ""))


def parse(value: str | dt.datetime | None) -> dt.datetime | None:
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    return value


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def when(value: str | None) -> str:
    """A timestamp in the local timezone, to the second."""
    moment = parse(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def seconds(start: str | dt.datetime | None, end: str | dt.datetime | None) -> float | None:
    """How long a run took (or has taken so far, if it has not ended)."""
    began = parse(start)
    if began is None:
        return None
    return ((parse(end) or dt.datetime.now(dt.UTC)) - began).total_seconds()


def duration(start: str | None, end: str | None) -> str:
    taken = seconds(start, end)
    if taken is None:
        return "-"
    if taken < 60:
        return f"{taken:.2f}s" if taken < 10 else f"{taken:.1f}s"
    minutes, rest = divmod(int(taken), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{rest:02d}s" if hours else f"{minutes}m{rest:02d}s"


def short(run_id: str) -> str:
    """The first 8 characters of an id: enough to name it to every command."""
    return run_id[:8]


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    shown = Table(title=title, title_justify="left", header_style="bold", box=None)
    for column in columns:
        shown.add_column(column, overflow="fold")
    for row in rows:
        shown.add_row(*(cell if isinstance(cell, Text) else str(cell) for cell in row))
    return shown


def fields(pairs: Iterable[tuple[str, Any]]) -> Table:
    """Name / value lines, for one object."""
    shown = Table(show_header=False, box=None, pad_edge=False)
    shown.add_column(style="bold")
    shown.add_column(overflow="fold")
    for name, value in pairs:
        shown.add_row(name, value if isinstance(value, Text) else str(value))
    return shown


def history(states: Iterable[dict[str, Any]]) -> Table:
    """A run's states, oldest first: ``{version, timestamp, state, type, message}`` each."""
    return table(
        "States",
        ["version", "time", "state", "message"],
        (
            [s["version"], when(s["timestamp"]), state(s["state"], s["type"]), s["message"] or ""]
            for s in states
        ),
    )
