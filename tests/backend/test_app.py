"""The server as a whole: routes, health, the playground, error masking, start-up upgrade,
and the ``runview`` commands that start it and manage its database."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.app import create_app
from backend.database import migrate
from backend.database.engine import Database
from backend.settings import Settings
from tests.conftest import DatabaseFactory, Server, run, unused_port


def test_health_reports_the_database(server: Server) -> None:
    response = httpx.get(f"{server.url}/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "postgresql" if "postgresql" in server.database_url else "sqlite",
    }


def test_health_is_503_when_the_database_is_unreachable() -> None:
    server = Server(f"postgresql+psycopg://postgres@127.0.0.1:{unused_port()}/none").start()
    try:
        response = httpx.get(f"{server.url}/health")
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable"
    finally:
        server.stop()


def test_playground_is_served_to_browsers(server: Server) -> None:
    response = httpx.get(f"{server.url}/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()
    root = httpx.get(server.url, follow_redirects=False)
    assert root.status_code in (302, 307) and root.headers["location"] == "/graphql"


@pytest.mark.server_faults
def test_a_server_fault_is_masked_not_leaked(databases: DatabaseFactory) -> None:
    url = databases.new("sqlite")
    server = Server(url).start()
    try:
        # Break the database under the running server: the query fails inside SQLAlchemy.
        path = url.removeprefix("sqlite+aiosqlite:///")
        with sqlite3.connect(path) as broken:
            broken.execute("DROP TABLE log")
        response = httpx.post(f"{server.url}/graphql", json={"query": "{ log { id } }"})
        assert response.status_code == 200
        assert response.json()["errors"][0]["message"] == "Unexpected error."
        assert "no such table" not in response.text
    finally:
        server.stop()


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_the_server_refuses_a_database_the_migrations_have_not_reached(
    databases: DatabaseFactory, backend: str
) -> None:
    url = databases.new(backend, migrated=False)
    app = create_app(Settings(database_url=url, upgrade_on_start=False))
    with pytest.raises(RuntimeError, match=r"revision None .* run `runview db upgrade"):
        async with app.router.lifespan_context(app):
            pass


def test_the_embedded_database_is_upgraded_on_start(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'runview.db'}"
    server = Server(url).start()  # embedded: upgrade_on_start defaults to true
    try:
        assert server.data("{ flow_aggregate { aggregate { count } } }") == {
            "flow_aggregate": {"aggregate": {"count": 0}}
        }
    finally:
        server.stop()


def _runview(*args: str, env: dict[str, str], **kwargs: Any) -> Any:
    command = [sys.executable, "-m", "sdk.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, **kwargs)


def test_cli_server_start_serves_the_embedded_database(tmp_path: Path) -> None:
    port = unused_port()
    env = {**os.environ, "RUNVIEW_HOME": str(tmp_path)}
    env.pop("RUNVIEW_DATABASE_URL", None)
    command = [sys.executable, "-m", "sdk.cli", "server", "start", "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            time.sleep(0.1)
        answer = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": "{ flow { id } }"})
        assert answer.json() == {"data": {"flow": []}}
        assert (tmp_path / "runview.db").exists()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}/graphql" in output


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_cli_db_upgrade(databases: DatabaseFactory, backend: str) -> None:
    url = databases.new(backend, migrated=False)
    result = _runview("db", "upgrade", "--database-url", url, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert f"is at revision {migrate.head()}" in result.stdout

    async def revision() -> str | None:
        db = Database(url)
        try:
            return await migrate.current(db.engine)
        finally:
            await db.dispose()

    assert run(revision()) == migrate.head()


def test_cli_schema_export_writes_the_live_schema(tmp_path: Path) -> None:
    from backend.api.schema import sdl

    target = tmp_path / "schema.graphql"
    result = _runview("schema", "export", "--output", str(target), env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert target.read_text() == sdl()
