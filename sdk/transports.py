"""Where requests go: a runview server over HTTP, or the backend embedded in this process.

Embedded mode (``RUNVIEW_API_URL`` unset) runs the backend app in-process, with its
lifespan (engine, migrations, background services) entered on the SDK loop, and sends
requests through ``httpx.ASGITransport``: the same HTTP semantics, no socket. It is the one
place the SDK imports ``backend``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from sdk import _loop

EMBEDDED_URL = "http://runview.embedded/graphql"


class EmbeddedServer:
    """One in-process backend per database URL, started on first use."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.app: Any = None
        self._lifespan: Any = None

    async def start(self) -> None:
        from backend.app import create_app
        from backend.settings import Settings

        # In process, nothing else can reach it, and whoever runs it opens the database
        # itself: keys would guard nothing.
        settings = Settings(
            database_url=self.database_url,
            upgrade_on_start=True,
            auth="off",
            allowed_hosts=[httpx.URL(EMBEDDED_URL).host],
        )
        self.app = create_app(settings)
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()

    async def stop(self) -> None:
        if self._lifespan is not None:
            lifespan, self._lifespan = self._lifespan, None
            await lifespan.__aexit__(None, None, None)

    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=self.app)

    async def subscribe(self, query: str, variables: dict[str, Any]) -> AsyncIterator[Any]:
        """The ``data`` of each result of a subscription, run by the in-process schema
        (httpx's ASGI transport has no WebSocket). Errors raise as the HTTP path's do."""
        from graphql import ExecutionResult

        from backend.api.context import Context
        from backend.api.schema import schema

        request = _InProcess(self.app)
        context = Context(db=self.app.state.db, request=request)
        results = await schema.subscribe(query, variable_values=variables, context_value=context)
        if isinstance(results, ExecutionResult):
            _raise(query, results)
            return
        async with contextlib.aclosing(results) as stream:
            async for result in stream:
                _raise(query, result)
                yield result.data


class _InProcess:
    """What the schema's resolvers ask of a request: the app serving it."""

    def __init__(self, app: Any) -> None:
        self.app = app


def _raise(query: str, result: Any) -> None:
    if result.errors:
        from sdk.exceptions import InvalidInput

        name = query.split("(", 1)[0].split()[-1]
        raise InvalidInput(f"The runview server refused {name}: {result.errors[0].message}")


_embedded: dict[str, EmbeddedServer] = {}
_starting = asyncio.Lock()


async def embedded(database_url: str) -> EmbeddedServer:
    """The embedded server for ``database_url``; call on the SDK loop."""
    async with _starting:
        server = _embedded.get(database_url)
        if server is None:
            server = EmbeddedServer(database_url)
            await server.start()
            _embedded[database_url] = server
        return server


async def _stop_all() -> None:
    for server in list(_embedded.values()):
        with contextlib.suppress(Exception):  # exiting anyway; nothing to report to
            await server.stop()
    _embedded.clear()


@atexit.register
def _shutdown() -> None:
    # Dispose the embedded engines cleanly (SQLite checkpoints its WAL on close).
    if _embedded and not _loop.on_loop():
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_stop_all(), _loop.loop()).result(timeout=10)
