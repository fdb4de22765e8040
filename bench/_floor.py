"""The floor: the same rows as one raw SQL query that builds the JSON in the database.

``Floor.fetch(sql, flow_run_id)`` runs one statement on a connection opened beforehand and
returns the JSON document as a Python ``str``. That is all the floor includes: sending the
query, the database planning and running it and building the JSON, the text crossing the
driver (loopback TCP for PostgreSQL, in-process for SQLite) and being decoded from UTF-8 into
a ``str``. It includes no JSON parsing in Python, no HTTP and no GraphQL.

PostgreSQL goes through psycopg 3 (the driver the server uses, with its default automatic
prepared statements); the ``::text`` cast keeps psycopg from parsing the JSON. SQLite goes
through the standard library's ``sqlite3`` on the same file; ids there come out as the
stored 32-digit hex (SQLAlchemy's ``Uuid`` on SQLite), not the dashed form the API returns.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any, Protocol

import psycopg

from bench._common import libpq_conninfo, sqlite_path


class Floor(Protocol):
    dialect: str

    def fetch(self, sql: str, flow_run_id: uuid.UUID) -> str:
        """Run ``sql`` (this dialect's, one ``flow_run_id`` parameter); return its JSON text."""
        ...

    def close(self) -> None: ...


class PostgresFloor:
    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self._conn: psycopg.Connection[Any] = psycopg.connect(libpq_conninfo(url), autocommit=True)

    def fetch(self, sql: str, flow_run_id: uuid.UUID) -> str:
        row = self._conn.execute(sql, (flow_run_id,)).fetchone()
        if row is None or not isinstance(row[0], str):
            raise RuntimeError(f"the floor query returned {row!r}")
        return row[0]

    def close(self) -> None:
        self._conn.close()


class SqliteFloor:
    dialect = "sqlite"

    def __init__(self, url: str) -> None:
        self._conn = sqlite3.connect(sqlite_path(url))

    def fetch(self, sql: str, flow_run_id: uuid.UUID) -> str:
        row = self._conn.execute(sql, (flow_run_id.hex,)).fetchone()
        if row is None or not isinstance(row[0], str):
            raise RuntimeError(f"the floor query returned {row!r}")
        return str(row[0])

    def close(self) -> None:
        self._conn.close()


def open_floor(backend: str, url: str) -> Floor:
    return SqliteFloor(url) if backend == "sqlite" else PostgresFloor(url)
