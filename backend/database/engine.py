"""Engine construction with the per-dialect settings runview depends on, and how an
unreachable database shows: ``DatabaseUnavailable``.

A database that cannot be reached (connection refused, lost mid-request, shutting down or
starting up, every pooled connection busy past the pool's timeout) raises
``DatabaseUnavailable`` wherever a query was attempted, instead of the driver's error; any
other database error is left as SQLAlchemy raises it, a fault. The server answers the first
with 503 and ``Retry-After`` (``backend.api.errors``); the client retries.

Recovery needs nothing more: SQLAlchemy notices a lost connection when a statement fails on
it, discards it and every connection pooled before it, so the requests after the database is
back get new ones. No ``pool_pre_ping``: its round trip on every checkout would cost each
request more than the one request that fails after an outage (the client retries it).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import TracebackType
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

    SQLite transactions are begun by SQLAlchemy rather than the driver, so that a write
    transaction (``Database.begin``) can be ``BEGIN IMMEDIATE``: it takes the write lock up
    front. With the default deferred BEGIN, two transactions that read a run and then update
    it both hold a read lock and deadlock on the upgrade ("database is locked"); taking the
    lock first makes the second wait, then read the first's write, as FOR UPDATE does.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, json_serializer=json_serializer, **kwargs)
        sa.event.listen(engine.sync_engine, "connect", _configure_sqlite)
        sa.event.listen(engine.sync_engine, "begin", _begin_sqlite)
    else:
        engine = create_async_engine(url, json_serializer=json_serializer, **kwargs)
    sa.event.listen(engine.sync_engine, "handle_error", _unavailable)
    return engine


class DatabaseUnavailable(ConnectionError):
    """The database cannot be reached now; the same request may succeed in a while.

    A ``ConnectionError``: ``backend.api`` may not import this layer, and tells an outage
    from a fault by that built-in base.
    """


# SQLSTATEs that mean "not now" rather than "not this": connection exceptions (class 08),
# admin or crash shutdown, starting up (57P01-57P03), too many connections (53300).
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def _unavailable(context: sa.engine.ExceptionContext) -> BaseException | None:
    """``handle_error`` listener: ``DatabaseUnavailable`` in place of a database error that
    says the database cannot be reached; ``None`` (SQLAlchemy's own error) otherwise."""
    if context.sqlalchemy_exception is None or context.is_pre_ping:
        # Not a driver error (a cancellation, say, which must stay one), or a pre-ping,
        # whose failure SQLAlchemy answers by reconnecting.
        return None
    error = context.original_exception
    sqlstate = getattr(error, "sqlstate", None)
    if (
        context.connection is None  # connecting failed
        or context.is_disconnect
        or (isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES))
    ):
        reason = (str(error).strip() or type(error).__name__).splitlines()[0]
        return DatabaseUnavailable(f"the database is unavailable: {reason}")
    return None


class _Borrowed:
    """``async with`` over a connection or transaction context whose checkout may wait for
    the pool: a pool timeout (every connection busy, or stuck connecting) is an outage too."""

    __slots__ = ("_borrowing",)

    def __init__(self, borrowing: AbstractAsyncContextManager[AsyncConnection]) -> None:
        self._borrowing = borrowing

    async def __aenter__(self) -> AsyncConnection:
        try:
            return await self._borrowing.__aenter__()
        except sa.exc.TimeoutError as error:
            raise DatabaseUnavailable(f"the database is unavailable: {error}") from error

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        return await self._borrowing.__aexit__(exc_type, exc, traceback)


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
    dbapi_connection.isolation_level = None  # the driver must not BEGIN by itself


def _begin_sqlite(connection: sa.Connection) -> None:
    immediate = connection.get_execution_options().get(WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# Execution option that marks a connection as about to write.
WRITE = "runview_write"


class Database:
    """The server's handle on its database: one engine, and the ways to borrow a connection.

    The API layer holds this and passes connections to ``backend.models``; it never sees
    SQLAlchemy itself.
    """

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = create_engine(url, **engine_kwargs)
        self._writer = self.engine.execution_options(**{WRITE: True})
        # PostgreSQL: no BEGIN and ROLLBACK around a lone statement, which is atomic anyway.
        # SQLite keeps its BEGIN: it is in-process, and resetting pysqlite's isolation level
        # on check-in would let the driver begin transactions on its own again.
        self._single = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.dialect == "postgresql"
            else self.engine
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def connect(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """``async with db.connect() as conn``: a connection for reads (rolled back on exit)."""
        return _Borrowed(self.engine.connect())

    def connect_single(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for ONE read statement: on PostgreSQL, outside any transaction,
        which saves the BEGIN and ROLLBACK round trips (the compiled read path)."""
        return _Borrowed(self._single.connect())

    def begin(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """``async with db.begin() as conn``: a write transaction, committed on success."""
        return _Borrowed(self._writer.begin())

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        async with self.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
