"""The real server under uvicorn, in a thread, with one persistent HTTP client and a counter.

A small equivalent of ``tests.conftest.Server`` (which drags in pytest): same start-up, but
the client is one ``httpx.Client`` kept open for the whole benchmark, so every timed request
reuses the same keep-alive connection.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn

from backend.app import create_app
from backend.settings import Settings

_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}


class Server:
    """A runview server on a free loopback port; ``statements`` records the SQL it runs."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.statements: list[str] = []
        self.app: Any = None
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None

    def __enter__(self) -> Server:
        # upgrade_on_start=False: the benchmark migrates its databases itself, before seeding.
        self.app = create_app(Settings(database_url=self.database_url, upgrade_on_start=False))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server failed to start")
            time.sleep(0.01)
        sa.event.listen(self.app.state.db.engine.sync_engine, "before_cursor_execute", self._count)
        # trust_env=False: never route loopback requests through a proxy from the environment.
        self._client = httpx.Client(base_url=self.url, trust_env=False, timeout=120)
        return self

    def __exit__(self, *_: object) -> None:
        if self._client is not None:
            self._client.close()
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    @property
    def queries(self) -> list[str]:
        """The recorded statements other than transaction control (BEGIN, COMMIT, ...).

        SQLite connections send their own ``BEGIN`` through the cursor (the server begins
        SQLite transactions itself), so the listener sees it; PostgreSQL's implicit BEGIN
        happens inside psycopg and is never seen.
        """
        return [s for s in self.statements if s.split(None, 1)[0].upper() not in _CONTROL]

    def _count(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.statements.append(statement)

    def post(self, query: str, variables: dict[str, Any] | None = None) -> bytes:
        """POST a GraphQL query and return the raw response body (read in full, not decoded)."""
        assert self._client is not None, "use the server as a context manager"
        response = self._client.post("/graphql", json={"query": query, "variables": variables})
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:500]}")
        return response.content
