"""Fixtures shared by every test: real databases, a real server, a statement counter.

Isolation: each test (or, for read-only modules, each module) gets a database of its own.
PostgreSQL databases are cloned from a template migrated once per session (``CREATE DATABASE
... TEMPLATE``, ~75 ms); SQLite databases are copies of a migrated file. Nothing is mocked.

``RUNVIEW_TEST_DATABASE_URL`` names the PostgreSQL server (and an existing database on it to
connect to while creating the others).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from backend.database import migrate
from backend.database.engine import Database
from backend.settings import Settings
from backend.testing import ServerThread
from tests.dataset import Dataset, seed

ADMIN_URL = os.environ.get(
    "RUNVIEW_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["postgresql", "sqlite"]


def unused_port() -> int:
    """A loopback port nothing listens on (for a server or database that is not there)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def run(coroutine: Any) -> Any:
    """Run async set-up from a sync fixture, on a loop of its own."""
    return asyncio.run(coroutine)


class DatabaseFactory:
    """Hands out fresh, migrated databases and removes them at the end of the session."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.prefix = f"runview_test_{uuid.uuid4().hex[:8]}"
        self.created: list[str] = []
        self._pg_template: str | None = None
        self._sqlite_template: Path | None = None
        self._postgres_names: list[str] = []
        self._dropper = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="drop")
        self._dropping: list[concurrent.futures.Future[None]] = []

    def _admin(self) -> psycopg.Connection[Any]:
        conninfo = make_url(ADMIN_URL).set(drivername="postgresql")
        return psycopg.connect(conninfo.render_as_string(hide_password=False), autocommit=True)

    def _pg_url(self, name: str) -> str:
        return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def new(self, backend: str, *, migrated: bool = True) -> str:
        self.created.append(name := f"{self.prefix}_{len(self.created)}")
        if backend == "sqlite":
            path = self.workdir / f"{name}.db"
            if migrated:
                shutil.copy(self._sqlite(), path)
            return f"sqlite+aiosqlite:///{path}"
        template = f" TEMPLATE {self._postgres()}" if migrated else ""
        with self._admin() as admin:
            admin.execute(f"CREATE DATABASE {name}{template}")
        self._postgres_names.append(name)
        return self._pg_url(name)

    def _sqlite(self) -> Path:
        if self._sqlite_template is None:
            path = self.workdir / f"{self.prefix}_template.db"
            run(migrate.upgrade_url(f"sqlite+aiosqlite:///{path}"))
            self._sqlite_template = path
        return self._sqlite_template

    def _postgres(self) -> str:
        if self._pg_template is None:
            name = f"{self.prefix}_template"
            with self._admin() as admin:
                # C collation: string order is code point order, as in Python and SQLite.
                admin.execute(
                    f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'"
                    " LC_COLLATE 'C' LC_CTYPE 'C'"
                )
            run(migrate.upgrade_url(self._pg_url(name)))
            self._pg_template = name
        return self._pg_template

    def release(self, url: str) -> None:
        """Drop the PostgreSQL database of ``url`` in the background: the next tests run
        meanwhile, instead of every drop waiting for the end of the session."""
        name = make_url(url).database
        if url.startswith("postgresql") and name in self._postgres_names:
            self._postgres_names.remove(name)
            self._dropping.append(self._dropper.submit(self._drop, [name]))

    def drop_all(self) -> None:
        self._dropper.shutdown(wait=True)
        for dropped in self._dropping:
            dropped.result()  # a drop that failed fails the session
        names = list(self._postgres_names)
        if self._pg_template:
            names.append(self._pg_template)
        self._drop(names)

    def _drop(self, names: list[str]) -> None:
        with self._admin() as admin:
            for name in names:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# The modules whose tests take longest (agents running real processes, the CLI's
# subprocesses, 10,000-item maps, server restarts) run first: parallel workers then finish
# together instead of one of them ending alone on a 90 s test.
SLOW_FIRST = (
    "tests/sdk/test_agent_isolation.py",
    "tests/sdk/cli/",
    "tests/sdk/test_scale.py",
    "tests/sdk/test_server_restart.py",
    "tests/sdk/test_agent.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next(
            (i for i, prefix in enumerate(SLOW_FIRST) if item.nodeid.startswith(prefix)),
            len(SLOW_FIRST),
        )

    items.sort(key=rank)  # stable: each module keeps its order, and stays in one piece


@pytest.fixture(autouse=True)
def _compiled_reads_do_not_fail(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """The compiled paths hand an operation they cannot answer to the executor, and log a
    fault when they break. Users get their answer either way; the tests must see the fault
    (unless the test breaks the database on purpose: ``@pytest.mark.server_faults``)."""
    yield
    if request.node.get_closest_marker("server_faults"):
        return
    # At teardown caplog.records holds only teardown's records: ask for the test's own.
    records = caplog.get_records("setup") + caplog.get_records("call")
    faults = [r for r in records if "compiled" in r.getMessage() and "failed" in r.getMessage()]
    assert not faults, faults[0].exc_text


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(tmp_path_factory.mktemp("databases"))
    yield factory
    factory.drop_all()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, databases: DatabaseFactory) -> Iterator[str]:
    """A fresh, migrated database for this test, on each backend."""
    url = databases.new(request.param)
    yield url
    databases.release(url)


@pytest.fixture
async def db(database_url: str) -> Any:
    database = Database(database_url)
    yield database
    await database.dispose()


class Server(ServerThread):
    """A runview server over ``database_url`` with a client's helpers.

    Background services are off unless a test asks: they would mark the fixed dataset's
    2021 runs Late and Crashed under the read tests.
    """

    def __init__(self, database_url: str) -> None:
        super().__init__(Settings(database_url=database_url))
        self.database_url = database_url

    def start(self, **settings: Any) -> Server:
        settings.setdefault("run_services", False)
        self.settings = Settings(database_url=self.database_url, **settings)
        super().start()
        return self

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST a query; assert the GraphQL-over-HTTP status; return the decoded body."""
        # 60 s, not httpx's 5: creating 10,000 mapped children takes seconds on a busy machine.
        response = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        return response.json()

    def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``data`` of a query that must succeed."""
        body = self.graphql(query, variables)
        assert "errors" not in body, body["errors"]
        return body["data"]


@pytest.fixture
def server(database_url: str) -> Iterator[Server]:
    """A running server over this test's database."""
    running = Server(database_url).start()
    yield running
    running.stop()


async def seed_database(url: str) -> Dataset:
    db = Database(url)
    try:
        return await seed(db)
    finally:
        await db.dispose()


@pytest.fixture
def replicas(server: Server) -> Iterator[list[Server]]:
    """Four servers over one database (``server`` first), as behind a load balancer.

    Races need them: one server's event loop tends to serialize concurrent requests and
    would hide a missing row lock.
    """
    others = [Server(server.database_url).start() for _ in range(3)]
    yield [server, *others]
    for other in others:
        other.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def seeded(request: pytest.FixtureRequest, databases: DatabaseFactory) -> Iterator[Any]:
    """(server, dataset) over a database of this module's own; tests must only read."""
    url = databases.new(request.param)
    data = run(seed_database(url))
    server = Server(url).start()
    yield server, data
    server.stop()
