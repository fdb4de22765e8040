"""B5: how many SQL statements a three-level nested selection costs, and how long it takes.

Seeds 100 flow runs, each with 3 task runs, each with 3 states, then asks the real server

    { flow_run(limit: 100) { task_runs { states { state } } } }

and counts the statements it sends to the database (a ``before_cursor_execute`` listener on
the server's engine, cleared after one warm-up query so connection set-up is not counted).
``queries`` leaves out transaction control (the ``BEGIN`` the server sends on SQLite);
``stmts`` is everything the listener saw. Targets: one statement on the compiled read path
(the server's default), one per nesting level (3) on Strawberry's executor; both are run.
Times are whole HTTP requests, as in B1.

    python -m bench.b5_nesting
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from backend.database import tables
from backend.database.engine import Database
from bench._common import BACKENDS, database, median, print_table, time_ms
from bench._server import Server

FLOW_RUNS = 100
TASK_RUNS = 3  # per flow run
STATES = ("Pending", "Running", "Completed")  # the history of every task run
LEVELS = 3
# Statements allowed: the compiled read path (the server's default) answers in one; the
# executor, its reference, may take one per nesting level.
FLOORS = {"compiled": 1, "executor": LEVELS}
RUNS = 11
QUERY = "{ flow_run(limit: 100) { task_runs { states { state } } } }"
T0 = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)


@dataclass
class Result:
    backend: str
    path: str
    runs: int
    queries: list[int]
    statements: list[int]
    server_ms: float


async def seed(url: str) -> None:
    flow_id = uuid.uuid4()
    task_ids = [uuid.uuid4() for _ in range(TASK_RUNS)]
    flow_runs: list[dict[str, Any]] = []
    task_runs: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    for run in range(FLOW_RUNS):
        flow_runs.append(
            {
                "id": (flow_run_id := uuid.uuid4()),
                "flow_id": flow_id,
                "name": f"run-{run}",
                "state": "Completed",
                "state_type": "COMPLETED",
            }
        )
        for task_id in task_ids:
            task_runs.append(
                {
                    "id": (task_run_id := uuid.uuid4()),
                    "flow_run_id": flow_run_id,
                    "task_id": task_id,
                    "name": "task",
                    "state": "Completed",
                    "state_type": "COMPLETED",
                }
            )
            states += [
                {
                    "id": uuid.uuid4(),
                    "task_run_id": task_run_id,
                    "timestamp": T0 + dt.timedelta(seconds=version),
                    "state": state,
                    "type": state.upper(),
                    "version": version,
                }
                for version, state in enumerate(STATES)
            ]
    db = Database(url)
    try:
        async with db.begin() as conn:
            await conn.execute(sa.insert(tables.flow), [{"id": flow_id, "name": "bench"}])
            await conn.execute(
                sa.insert(tables.task),
                [
                    {"id": id, "flow_id": flow_id, "slug": f"task-{n}", "name": f"task-{n}"}
                    for n, id in enumerate(task_ids)
                ],
            )
            await conn.execute(sa.insert(tables.flow_run), flow_runs)
            await conn.execute(sa.insert(tables.task_run), task_runs)
            await conn.execute(sa.insert(tables.task_run_state), states)
    finally:
        await db.dispose()


def _check(body: bytes) -> None:
    """Raise unless the answer is every flow run, task run and state that was seeded."""
    answer = json.loads(body)
    if answer.get("errors") or not answer.get("data"):
        raise RuntimeError(f"the server answered with errors: {str(answer)[:500]}")
    runs = answer["data"]["flow_run"]
    task_runs = [task_run for run in runs for task_run in run["task_runs"]]
    states = [state for task_run in task_runs for state in task_run["states"]]
    expected = (FLOW_RUNS, FLOW_RUNS * TASK_RUNS, FLOW_RUNS * TASK_RUNS * len(STATES))
    if (len(runs), len(task_runs), len(states)) != expected:
        raise RuntimeError(
            f"expected {expected} flow runs, task runs, states;"
            f" got {(len(runs), len(task_runs), len(states))}"
        )


def measure(backend: str, path: str, server: Server) -> Result:
    _check(server.post(QUERY))  # also the warm-up: the pool's first connection is made here
    queries, statements, times = [], [], []
    for _ in range(RUNS):
        server.statements.clear()
        times.append(time_ms(lambda: server.post(QUERY)))
        queries.append(len(server.queries))
        statements.append(len(server.statements))
    return Result(backend, path, RUNS, queries, statements, median(times))


def _counts(counts: list[int]) -> str:
    """The distinct counts seen over the runs, e.g. ``3`` or ``3/4`` if they varied."""
    return "/".join(str(n) for n in sorted(set(counts)))


def run_backend(backend: str) -> list[Result]:
    with database(backend) as url:
        asyncio.run(seed(url))
        results = []
        for path in FLOORS:
            with Server(url, compiled_reads=path == "compiled") as server:
                results.append(measure(backend, path, server))
        return results


def report(results: list[Result]) -> None:
    print_table(
        f"B5  {QUERY}  (target: 1 query compiled, one per level ({LEVELS}) on the executor)",
        ["database", "path", "runs", "queries", "stmts", "target", "median ms"],
        [
            [
                r.backend,
                r.path,
                r.runs,
                _counts(r.queries),
                _counts(r.statements),
                FLOORS[r.path],
                f"{r.server_ms:.1f}",
            ]
            for r in results
        ],
    )


def main() -> None:
    report([result for backend in BACKENDS for result in run_backend(backend)])


if __name__ == "__main__":
    main()
