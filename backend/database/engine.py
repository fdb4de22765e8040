"""Engine construction with the per-dialect settings runview depends on."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from backend.database.types import json_serializer


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Create the async engine for ``url``, preparing the SQLite file if needed.

    SQLite connections get foreign keys on (ON DELETE CASCADE depends on it), WAL so readers
    do not block the writer, a busy timeout instead of instant "database is locked" errors,
    and case-sensitive LIKE so ``_like`` means the same as on PostgreSQL.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, json_serializer=json_serializer, **kwargs)
        sa.event.listen(engine.sync_engine, "connect", _configure_sqlite)
        return engine
    return create_async_engine(url, json_serializer=json_serializer, **kwargs)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA foreign_keys = ON",
        "PRAGMA journal_mode = WAL",
        "PRAGMA busy_timeout = 30000",
        "PRAGMA case_sensitive_like = ON",
    ):
        cursor.execute(pragma)
    cursor.close()


class Database:
    """The server's handle on its database: one engine, and the ways to borrow a connection.

    The API layer holds this and passes connections to ``backend.models``; it never sees
    SQLAlchemy itself.
    """

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = create_engine(url, **engine_kwargs)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def connect(self) -> AsyncConnection:
        """``async with db.connect() as conn``: a connection for reads (rolled back on exit)."""
        return self.engine.connect()

    def begin(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """``async with db.begin() as conn``: a transaction, committed on success."""
        return self.engine.begin()

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
