"""What every inspecting command shares: the client, ``--output``, id prefixes, errors.

Commands fetch with the SDK (views and documents) and hand plain data to ``_render``; with
``--output json`` the same data goes to stdout as one JSON document instead of a table.
Expected failures are raised as ``RunviewError``; ``sdk.cli.main`` prints them as one line
on stderr and exits 1.
"""

from __future__ import annotations

import enum
import json
import logging
import re
import sys
import uuid
from typing import Annotated, Any

import httpx
import typer

from sdk import documents
from sdk.client import Client
from sdk.exceptions import InvalidInput, NotFound
from sdk.settings import SDKSettings

# A server that does not answer is reported within seconds (each attempt waits this long to
# connect, and attempts stop after RETRY_SECONDS), not after the 30 s a slow answer may take
# or the two minutes a flow's client rides through: a person is waiting at the terminal.
CONNECT_SECONDS = 2.0
RETRY_SECONDS = 3.0
# An id prefix must be this long, as git and docker ask, so that it is likely unique.
MIN_PREFIX = 8
# Candidates listed when a prefix is ambiguous.
CANDIDATES = 10


class Output(enum.StrEnum):
    table = "table"
    json = "json"


OutputOption = Annotated[
    Output,
    typer.Option(
        "--output", help="table for people; json for scripts (one JSON document on stdout)."
    ),
]

_client: Client | None = None


def client() -> Client:
    """The process's client: the server at ``RUNVIEW_API_URL``, or embedded when unset."""
    global _client
    if _client is None:
        settings = SDKSettings()
        # RUNVIEW_CLIENT_RETRY_SECONDS, when set, is the user's choice; otherwise be brief.
        retry = None if "client_retry_seconds" in settings.model_fields_set else RETRY_SECONDS
        _client = Client(
            timeout=httpx.Timeout(30.0, connect=CONNECT_SECONDS),
            retry_seconds=retry,
            settings=settings,
        )
    return _client


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


_HEX = re.compile(r"[0-9a-f]+")


def resolve_flow_run_id(text: str) -> uuid.UUID:
    """The flow run whose id is ``text``, or starts with it (8 or more hex digits).

    Raises:
        InvalidInput: ``text`` is not an id or a prefix of one, or several runs start with it.
        NotFound: No flow run has that id or prefix.
    """
    digits = text.strip().lower().replace("-", "")
    if not _HEX.fullmatch(digits) or not MIN_PREFIX <= len(digits) <= 32:
        raise InvalidInput(
            f"{text!r} is not a flow run id; expected a UUID such as"
            f" '8e445d74-9ca6-425b-98e5-72754b7ea174', or its first {MIN_PREFIX} or more"
            " characters."
        )
    first, last = (uuid.UUID(digits.ljust(32, pad)) for pad in "0f")
    variables = {"first": str(first), "last": str(last), "limit": CANDIDATES + 1}
    rows = client().execute(documents.FLOW_RUNS_IN_RANGE, variables)["flow_run"]
    if not rows:
        what = "id" if len(digits) == 32 else "id starting with"
        raise NotFound(f"No flow run has the {what} {text!r}.")
    if len(rows) > 1:
        listed = "; ".join(
            f"{row['id']} ({row['name']}, flow {row['flow']['name']!r}, {row['state']})"
            for row in rows[:CANDIDATES]
        )
        more = "; and more" if len(rows) > CANDIDATES else ""
        raise InvalidInput(
            f"{text!r} is ambiguous: it starts the ids of several flow runs: {listed}{more}."
            " Give more characters."
        )
    return uuid.UUID(rows[0]["id"])


def parse_level(text: str | int) -> int:
    """A log level by name (``info``, ``WARNING``) or number (``20``)."""
    if isinstance(text, int):  # the default
        return text
    if text.isdigit():
        return int(text)
    level = logging.getLevelNamesMapping().get(text.upper())
    if level is None:
        names = "DEBUG, INFO, WARNING, ERROR, CRITICAL"
        raise typer.BadParameter(f"{text!r} is not a log level; expected {names} or a number.")
    return level


# The state names a run can be in, as the server names them.
STATE_NAMES = (
    "Scheduled",
    "Late",
    "AwaitingRetry",
    "Pending",
    "Running",
    "Retrying",
    "Paused",
    "Cancelling",
    "Cancelled",
    "Completed",
    "Cached",
    "Failed",
    "TimedOut",
    "Crashed",
)


def parse_state(text: str) -> str:
    """A state name, given in any case (``failed`` -> ``Failed``)."""
    for name in STATE_NAMES:
        if name.lower() == text.lower():
            return name
    raise typer.BadParameter(f"{text!r} is not a state; expected one of {', '.join(STATE_NAMES)}.")
