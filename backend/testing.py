"""The real server in a thread of this process, for tests and benchmarks.

``ServerThread`` runs ``create_app`` under uvicorn on a free loopback port and records every
SQL statement the server's engine sends, so a test can count queries (N+1 checks) while a
real client talks HTTP to it.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import sqlalchemy as sa
import uvicorn

from backend.app import create_app
from backend.settings import Settings

# Transaction control is not a query: psycopg sends its BEGIN unseen, SQLite's is visible.
_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}


class ServerThread:
    """Serve ``create_app(settings)``, or ``wrap(create_app(settings))`` when a test puts
    middleware in front of the real app (a flaky proxy, say)."""

    def __init__(self, settings: Settings, wrap: Any = None) -> None:
        self.settings = settings
        self.wrap = wrap
        self.app: Any = None
        self.url = ""
        self.statements: list[str] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ServerThread:
        self.app = create_app(self.settings)
        served = self.wrap(self.app) if self.wrap else self.app
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(served, log_level="warning"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server failed to start; see its log above")
            time.sleep(0.01)
        engine = self.app.state.db.engine.sync_engine
        sa.event.listen(engine, "before_cursor_execute", self._record)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    @property
    def queries(self) -> list[str]:
        """The statements recorded, transaction control left out, and so is SQLite's probe
        of table sizes (at most once a second a table: ``json_reads._without_needless_caps``)."""
        return [
            s
            for s in self.statements
            if s.split(None, 1)[0].upper() not in _CONTROL and "max(rowid)" not in s
        ]

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.statements.append(statement)
