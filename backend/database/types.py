"""Column types that behave the same on PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

UTC = dt.UTC


class Timestamp(sa.TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on every database.

    PostgreSQL stores ``timestamptz``. SQLite has no timezone type, so values are stored as
    naive UTC text in a fixed format, which keeps lexical comparison equal to time order.
    Naive datetimes coming in are taken to be UTC; everything coming out is aware UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, normalised); JSON text on SQLite. Python None is SQL NULL,
# not the JSON value null, so that _is_null means what the client sees.
Jsonb = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def json_serializer(value: Any) -> str:
    """Serialise JSON canonically: on SQLite, equal documents must be equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)
