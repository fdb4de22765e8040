"""The Hasura scalars: ``uuid``, ``timestamptz`` and ``jsonb``.

Parse errors raise ``InputError`` with the offending value, so a client that sends
``"not-a-uuid"`` is told exactly that, and the message survives error masking.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

from backend.errors import InputError

Jsonb = NewType("Jsonb", object)


def _parse_uuid(value: Any) -> uuid.UUID:
    if isinstance(value, str) and len(value) == 36:
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InputError(
        f"{value!r} is not a uuid; expected 36 characters such as "
        "'8e445d74-9ca6-425b-98e5-72754b7ea174'."
    )


def _parse_timestamptz(value: Any) -> dt.datetime:
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            # Hasura reads a timestamp without an offset as UTC; so does runview.
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise InputError(
        f"{value!r} is not a timestamptz; expected ISO 8601 such as '2021-05-12T18:00:01+00:00'."
    )


SCALARS: dict[object, ScalarDefinition] = {
    uuid.UUID: strawberry.scalar(
        name="uuid", serialize=str, parse_value=_parse_uuid, description="A UUID, as text."
    ),
    dt.datetime: strawberry.scalar(
        name="timestamptz",
        serialize=dt.datetime.isoformat,
        parse_value=_parse_timestamptz,
        description="A point in time, ISO 8601 with a UTC offset.",
    ),
    Jsonb: strawberry.scalar(name="jsonb", description="Any JSON value."),
}
