"""What both views share: the NOT_LOADED sentinel, id parsing, running documents, and how
a view pickles.

A view pickles as its snapshot data alone, without its client or what it has loaded or
cached; it is loaded back attached to the default client (``RUNVIEW_API_URL``...). That is
how a task can return a view (``wait_for_flow_run`` returns a ``FlowRunView``): task results
are pickled to result storage, and a client, with its connections, does not pickle.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sdk import _loop
from sdk.client import BaseClient, default_client
from sdk.documents import Document
from sdk.exceptions import InvalidInput
from sdk.states import NOT_LOADED


async def execute(client: BaseClient, document: Document, variables: dict[str, Any]) -> Any:
    return await _loop.run_async(client._execute(document, variables))


def parse_uuid(value: Any, what: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(
            f"{value!r} is not a {what} id; expected a UUID such as"
            " '8e445d74-9ca6-425b-98e5-72754b7ea174'."
        ) from None


def parse_time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


@dataclass
class Slot:
    """The one mutable part of a frozen view: its result, once loaded."""

    value: Any = NOT_LOADED


def reduce_view(view: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """``__reduce__`` of a view: its public fields; private ones (client, caches) are left."""
    fields = {f.name: getattr(view, f.name) for f in dataclasses.fields(view)}
    public = {name: value for name, value in fields.items() if not name.startswith("_")}
    return restore_view, (type(view), public)


def restore_view(cls: type[Any], fields: dict[str, Any]) -> Any:
    """A pickled view, loaded back with the default client."""
    return cls(**fields, _client=default_client())
