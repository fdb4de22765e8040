"""PostgreSQL restarted under a running server: 503 with ``Retry-After`` while it is down,
service again as soon as it is back (the same server process, never restarted), and a flow
running through the restart ends Completed with every state recorded once.

Underneath, the database layer tells an outage (nothing to connect to, a pool that times
out) from a fault (a bad statement, a statement timeout) and leaves cancellations alone.

The database is a cluster of this module's own (``tests.throwaway_postgres``): stopping the
shared server would break every other test running against it. The server is a real
``runview server start`` subprocess, its output kept in a file the failures point to; the
flow runs in this process, against it over HTTP.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from backend.database.engine import Database, DatabaseUnavailable
from sdk import flow, task
from tests.conftest import run, unused_port
from tests.throwaway_postgres import ThrowawayPostgres

CHILDREN = 200
OUTAGE_SECONDS = 3.0

FLOWS = "{ flow { id name } }"  # a plain read: the compiled read path
CREATE_FLOW = 'mutation { create_flow(input: {name: "outage"}) { id version } }'  # the executor


class ServerProcess:
    """``runview server start`` over ``database_url`` on a free port, services every 0.5 s."""

    def __init__(self, database_url: str, home: Path) -> None:
        self.port = unused_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "server.log"
        env = {
            **os.environ,
            "RUNVIEW_HOME": str(home),
            "RUNVIEW_DATABASE_URL": database_url,
            "RUNVIEW_PORT": str(self.port),
            "RUNVIEW_SERVICES_INTERVAL_SECONDS": "0.5",
        }
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sdk.cli", "server", "start"],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.wait_until(lambda: self.get("/health").status_code == 200, 30, "start")

    def post(self, query: str) -> httpx.Response:
        return httpx.post(f"{self.url}/graphql", json={"query": query}, timeout=30)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=30, **kwargs)

    def data(self, query: str) -> Any:
        response = self.post(query)
        assert response.status_code == 200, self.explain(response.text)
        assert "errors" not in response.json(), self.explain(response.text)
        return response.json()["data"]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def explain(self, what: object) -> str:
        tail = "\n".join(self.output().splitlines()[-30:])
        return f"{what}\n--- the server's last lines ({self.log}) ---\n{tail}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def wait_until(self, condition: Callable[[], bool], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                if condition():
                    return
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, self.explain(f"the server exited on {what}")
            assert time.monotonic() < deadline, self.explain(f"the server did not {what}")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres() as pg:
        from backend.database import migrate

        run(migrate.upgrade_url(pg.url))
        yield pg


@pytest.fixture(scope="module")
def server(
    cluster: ThrowawayPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    process = ServerProcess(cluster.url, tmp_path_factory.mktemp("server"))
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def _cluster_back_up(cluster: ThrowawayPostgres) -> Iterator[None]:
    """Whatever a test does, the next one starts with the database up."""
    yield
    if not cluster.running:
        cluster.start()


@pytest.mark.anyio
async def test_only_an_unreachable_database_is_an_outage(cluster: ThrowawayPostgres) -> None:
    db = Database(cluster.url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        async with db.connect() as held:
            await held.execute(sa.text("SELECT 1"))
            for borrow in (db.connect, db.connect_single, db.begin):
                with pytest.raises(DatabaseUnavailable, match="QueuePool limit"):
                    async with borrow():
                        pass
        # Faults stay faults: a bad statement, a statement timeout.
        async with db.connect() as conn:
            with pytest.raises(sa.exc.ProgrammingError):
                await conn.execute(sa.text("SELECT * FROM no_such_table"))
        async with db.connect() as conn:
            await conn.execute(sa.text("SET statement_timeout = 20"))
            with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
                await conn.execute(sa.text("SELECT pg_sleep(1)"))

        # A cancelled query stays cancelled, and its connection is not mistaken for a sign.
        async def slow() -> None:
            async with db.connect() as conn:
                await conn.execute(sa.text("SELECT pg_sleep(5)"))

        sleeping = asyncio.create_task(slow())
        await asyncio.sleep(0.3)
        sleeping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeping
        async with db.connect() as conn:
            assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
    finally:
        await db.dispose()
    # Nothing to connect to at all.
    nowhere = Database(f"postgresql+psycopg://postgres@127.0.0.1:{unused_port()}/none")
    try:
        with pytest.raises(DatabaseUnavailable, match="refused"):
            await nowhere.ping()
    finally:
        await nowhere.dispose()


def test_the_server_answers_503_while_the_database_is_down(
    cluster: ThrowawayPostgres, server: ServerProcess
) -> None:
    server.data(FLOWS)
    cluster.stop()
    for query in (FLOWS, CREATE_FLOW):
        response = server.post(query)
        assert response.status_code == 503, server.explain(response.text)
        assert 0 < int(response.headers["retry-after"]) <= 30
        body = response.json()
        assert body["code"] == "UNAVAILABLE" and "database is unavailable" in body["message"]
        assert "errors" not in body  # not a GraphQL verdict on the request: retry it
        assert "refused" not in response.text  # the driver's words stay in the log
    health = server.get("/health")
    assert health.status_code == 503 and "retry-after" in health.headers
    # The playground still opens (on its no-flow-run query) without its database.
    page = server.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    time.sleep(1.0)  # two rounds of the services meet the outage

    cluster.start()
    pid = server.process.pid
    assert isinstance(server.data(FLOWS)["flow"], list)
    assert server.data(CREATE_FLOW)["create_flow"]["id"]
    assert server.get("/health").status_code == 200
    assert server.process.poll() is None and server.process.pid == pid

    # The services went on through the outage: a run due a minute ago is marked Late.
    assert "a round of the background services was skipped" in server.output()
    due = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    run_id = server.data(
        f'mutation {{ create_flow_run(input: {{flow_name: "outage",'
        f' scheduled_start_time: "{due}"}}) {{ id }} }}'
    )["create_flow_run"]["id"]
    query = f'{{ flow_run_by_pk(id: "{run_id}") {{ state }} }}'
    server.wait_until(
        lambda: server.data(query)["flow_run_by_pk"]["state"] == "Late",
        15,
        "mark a run Late after the outage",
    )


def test_a_flow_runs_through_a_database_restart(
    cluster: ThrowawayPostgres,
    server: ServerProcess,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("RUNVIEW_API_URL", f"{server.url}/graphql")
    monkeypatch.setenv("RUNVIEW_HOME", str(tmp_path))
    # The test's own look at the database: no pool, so no connection outlives the restart.
    engine = sa.create_engine(cluster.url, poolclass=sa.NullPool)

    @task
    def square(x: int) -> int:
        time.sleep(0.2)  # slow enough that the restart falls in the middle of the map
        return x * x

    @flow
    def squares_through_a_restart(n: int) -> Any:
        return square.map(range(n))

    outcome: dict[str, Any] = {}

    def run_flow() -> None:
        try:
            outcome["state"] = squares_through_a_restart(CHILDREN, return_state=True)
        except BaseException as error:  # the test says what went wrong
            outcome["error"] = error

    def completed() -> int:
        with engine.connect() as conn:
            # The only mapped children in this module's database are the flow's.
            query = "SELECT count(*) FROM task_run WHERE map_index >= 0 AND state = 'Completed'"
            return conn.scalar(sa.text(query)) or 0

    pid = server.process.pid
    requests_before = server.output().count('"POST /graphql HTTP/1.1" 503')
    runner = threading.Thread(target=run_flow, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 120
        while (done := completed()) < CHILDREN // 4:
            assert runner.is_alive(), outcome
            assert time.monotonic() < deadline, "the flow made no progress"
            time.sleep(0.05)
        cluster.stop()
        time.sleep(OUTAGE_SECONDS)
        cluster.start()
        runner.join(timeout=180)
        assert not runner.is_alive(), server.explain("the flow did not finish after the restart")
    finally:
        if not cluster.running:
            cluster.start()
    assert done < CHILDREN, "the flow finished before the restart; make its tasks slower"
    assert server.process.poll() is None and server.process.pid == pid
    # The flow's own requests met the outage (answered 503), and rode through it.
    assert server.output().count('"POST /graphql HTTP/1.1" 503') > requests_before

    assert "error" not in outcome, outcome["error"]
    state = outcome["state"]
    assert state.name == "Completed", state
    assert state.result() == [x * x for x in range(CHILDREN)]
    with engine.connect() as conn:
        flow_run_id = state.flow_run_id
        per_child = conn.execute(
            sa.text(
                """SELECT r.map_index, count(s.id) FILTER (WHERE s.type = 'COMPLETED')
                   FROM task_run r LEFT JOIN task_run_state s ON s.task_run_id = r.id
                   WHERE r.flow_run_id = :id AND r.map_index >= 0 GROUP BY r.map_index"""
            ),
            {"id": flow_run_id},
        ).all()
        running = conn.scalar(
            sa.text(
                """SELECT count(*) FROM (
                       SELECT state_type FROM flow_run WHERE id = :id UNION ALL
                       SELECT state_type FROM task_run WHERE flow_run_id = :id) runs
                   WHERE state_type IN ('RUNNING', 'PENDING', 'SCHEDULED')"""
            ),
            {"id": flow_run_id},
        )
    engine.dispose()
    assert sorted(index for index, _ in per_child) == list(range(CHILDREN))
    assert {count for _, count in per_child} == {1}, "a child with other than one COMPLETED row"
    assert running == 0
