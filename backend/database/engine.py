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

import asyncio
import functools
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from backend.database.types import json_serializer


def create_engine(url: str, statement_timeout: float | None = None, **kwargs: Any) -> AsyncEngine:
    """Create the async engine for ``url``, preparing the SQLite file if needed.

    With ``statement_timeout`` (seconds), a statement that runs longer is stopped and raises
    ``StatementTimeout``.

    SQLite connections get foreign keys on (ON DELETE CASCADE depends on it), WAL so readers
    do not block the writer, a busy timeout instead of instant "database is locked" errors,
    and case-sensitive LIKE so ``_like`` means the same as on PostgreSQL.

    SQLite transactions are begun by SQLAlchemy rather than the driver, so that a write
    transaction (``Database.begin``) can be ``BEGIN IMMEDIATE``: it takes the write lock up
    front. With the default deferred BEGIN, two transactions that read a run and then update
    it both hold a read lock and deadlock on the upgrade ("database is locked"); taking the
    lock first makes the second wait, then read the first's write, as FOR UPDATE does.
    """
    kwargs.setdefault("hide_parameters", True)  # a fault's log never shows the client's values
    parsed = make_url(url)
    if statement_timeout and parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = _with_timeout(kwargs.get("connect_args"), statement_timeout)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, json_serializer=json_serializer, **kwargs)
        sa.event.listen(engine.sync_engine, "connect", _configure_sqlite)
        sa.event.listen(engine.sync_engine, "begin", _begin_sqlite)
    else:
        engine = create_async_engine(url, json_serializer=json_serializer, **kwargs)
    sa.event.listen(engine.sync_engine, "handle_error", _unavailable)
    if statement_timeout:
        _time_statements(engine, statement_timeout)
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

    def __init__(self, url: str, statement_timeout: float | None = None, **engine_kwargs: Any):
        self.url = url
        self.engine = create_engine(url, statement_timeout, **engine_kwargs)
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


class StatementTimeout(TimeoutError):
    """A statement ran longer than the statement timeout, and the database stopped it.

    A ``TimeoutError``, as ``DatabaseUnavailable`` is a ``ConnectionError``: ``backend.api``
    tells it by that base and answers that the request went over a limit. Trying the same
    work again, another way, would only run into the timeout again.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the statement ran longer than the statement timeout of {seconds:g} s")
        self.seconds = seconds


def _with_timeout(connect_args: dict[str, Any] | None, seconds: float) -> dict[str, Any]:
    # PostgreSQL stops the statement itself. Set for each connection in its startup packet
    # (libpq's options), it costs no round trip: every statement on every connection of the
    # engine is under it, reads, loaders, writes and services alike.
    arguments = dict(connect_args or {})
    option = f"-c statement_timeout={max(1, round(seconds * 1000))}"
    arguments["options"] = f"{arguments.get('options', '')} {option}".strip()
    return arguments


def _time_statements(engine: AsyncEngine, seconds: float) -> None:
    if engine.dialect.name == "sqlite":
        alarm = _SqliteAlarm(seconds)
        sa.event.listen(engine.sync_engine, "before_cursor_execute", alarm.start)
        sa.event.listen(engine.sync_engine, "after_cursor_execute", alarm.stop)
        sa.event.listen(engine.sync_engine, "handle_error", alarm.stopped)
    else:
        sa.event.listen(engine.sync_engine, "handle_error", functools.partial(_cancelled, seconds))


def _cancelled(seconds: float, context: sa.engine.ExceptionContext) -> BaseException | None:
    # 57014 (query_canceled) is the statement timeout: the server sends no cancel requests
    # of its own (a cancelled request's task ends with CancelledError, not this).
    if getattr(context.original_exception, "sqlstate", None) == "57014":
        return StatementTimeout(seconds)
    return None


_ALARM = "runview_statement_alarm"


class _SqliteAlarm:
    """SQLite's statement timeout, which it has not got: ``sqlite3_interrupt`` once a
    statement has run ``seconds``.

    aiosqlite runs the statement (and its fetch) in its own thread; meanwhile the event loop
    is free and its timer interrupts the statement, which then fails with "interrupted" (its
    transaction rolled back, as PostgreSQL aborts one at its timeout). ``stopped`` makes that
    a ``StatementTimeout``. No cost while statements run, unlike a progress handler calling
    into Python every few thousand instructions.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def start(self, conn: sa.Connection, *_: Any) -> None:
        self.stop(conn)  # one a cancelled statement left behind
        conn.info[_ALARM] = _Alarm(self.seconds, conn.connection.driver_connection)

    def stop(self, conn: sa.Connection, *_: Any) -> None:
        alarm = conn.info.pop(_ALARM, None)
        if alarm is not None:
            alarm.cancel()

    def stopped(self, context: sa.engine.ExceptionContext) -> BaseException | None:
        alarm = None if context.connection is None else context.connection.info.pop(_ALARM, None)
        if alarm is None:
            return None
        alarm.cancel()
        return StatementTimeout(self.seconds) if alarm.rang else None


class _Alarm:
    def __init__(self, seconds: float, driver: Any) -> None:
        self.rang = False
        self._cancelled = False
        self._driver = driver  # the aiosqlite connection
        self._interrupting: asyncio.Future[Any] | None = None
        self._handle = asyncio.get_running_loop().call_later(seconds, self._ring)

    def _ring(self) -> None:
        self.rang = True
        self._interrupting = asyncio.ensure_future(self._interrupt())

    async def _interrupt(self) -> None:
        # Not if the statement ended meanwhile: the next one on the connection is not late.
        # (aiosqlite's interrupt() calls sqlite3_interrupt at once, which is safe from any
        # thread while the connection's own thread runs the statement.)
        if not self._cancelled:
            await self._driver.interrupt()

    def cancel(self) -> None:
        self._cancelled = True
        self._handle.cancel()
