"""What both views share: the NOT_LOADED sentinel, id parsing, running documents."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sdk import _loop
from sdk.client import BaseClient
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
