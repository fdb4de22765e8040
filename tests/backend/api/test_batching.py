"""Nested selections cost one SQL statement per relationship level on the executor path and
one statement in all on the compiled path, whatever the row count.

The statements are counted at the server's own engine while a real client queries it over
HTTP. The same query over ten times as many rows must issue the same number of statements;
a resolver that queried per row (N+1) would fail this.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from backend import models
from backend.database.engine import Database
from tests.conftest import Server

NESTED = """{
  flow_run(order_by: {name: asc}) {
    name
    flow { name }
    logs { message }
    task_runs(order_by: {map_index: asc}) {
      map_index
      task { slug flow { name } }
      states(order_by: {version: asc}) { state }
    }
  }
}"""
# flow_run, flow, logs, task_runs, task, task.flow, states
LEVELS = 7


async def _add_runs(db: Database, flow_id: Any, task_id: Any, runs: int, start: int) -> None:
    async with db.begin() as conn:
        for n in range(start, start + runs):
            run = await models.insert_flow_run(conn, flow_id=flow_id, name=f"run-{n:04d}")
            await models.insert_log(conn, flow_run_id=run.id, level=20, name="x", message="hi")
            for map_index in range(3):
                task_run = await models.insert_task_run(
                    conn, flow_run_id=run.id, task_id=task_id, name="inc", map_index=map_index
                )
                for version, state in enumerate(["Pending", "Running"], start=1):
                    await models.insert_task_run_state(
                        conn, task_run_id=task_run.id, state=state, type="X", version=version
                    )


def _count(server: Server, query: str) -> tuple[int, dict[str, Any]]:
    server.statements.clear()
    data = server.data(query)
    return len(server.queries), data


@pytest.fixture(params=[False, True], ids=["executor", "compiled"])
def server(request: pytest.FixtureRequest, database_url: str) -> Iterator[Server]:
    running = Server(database_url).start(compiled_reads=request.param)
    yield running
    running.stop()


@pytest.mark.anyio
async def test_nested_query_statement_count_does_not_grow_with_rows(
    server: Server, db: Database
) -> None:
    # The executor needs a statement per relationship level; the compiled path one in all.
    levels = 1 if server.settings.compiled_reads else LEVELS
    async with db.begin() as conn:
        flow = await models.insert_flow(conn, name="batch")
        task = await models.insert_task(conn, flow_id=flow.id, slug="inc-1", name="inc")
    server.data("{ flow_aggregate { aggregate { count } } }")  # first connection's set-up

    await _add_runs(db, flow.id, task.id, runs=5, start=0)
    small, data = _count(server, NESTED)
    assert len(data["flow_run"]) == 5
    assert small == levels, server.queries

    await _add_runs(db, flow.id, task.id, runs=45, start=5)
    large, data = _count(server, NESTED)
    runs = data["flow_run"]
    assert len(runs) == 50
    assert sum(len(run["task_runs"]) for run in runs) == 150
    assert all(len(t["states"]) == 2 for run in runs for t in run["task_runs"])
    assert large == small, server.queries

    # The benchmark's B5 shape: three levels, three statements (executor).
    b5, data = _count(server, "{ flow_run(limit: 100) { task_runs { states { state } } } }")
    assert b5 == (1 if server.settings.compiled_reads else 3)
    # Arguments that differ per field get their own batch, not a statement per row.
    aliased, _ = _count(
        server,
        """{ flow_run { a: task_runs(limit: 1) { id } b: task_runs(offset: 1) { id }
                        c: task_runs(limit: 1) { id } } }""",
    )
    # Executor: flow_run, a and c (same arguments, one loader), b.
    assert aliased == (1 if server.settings.compiled_reads else 3)
