"""B1: the task runs of one big flow run, over HTTP, against a one-statement JSON floor.

Seeds one flow run with 10,000 task runs (100 tasks x 100 map indexes, with states and start
times) and a second flow run with 300 task runs, so the filter has rows to reject. Then, on
the real server (uvicorn, loopback, one keep-alive ``httpx.Client``), times

* ``all``: ``task_run(where: {flow_run_id: {_eq: $id}}) { id state start_time task { slug } }``
  for all 10,000 rows, and
* ``page``: the same with ``order_by: {start_time: asc}, limit: 100``,

against the floor of ``bench._floor`` (the same rows as one SQL statement building the JSON in
the database). A server time is one POST until the whole response body is read; the client
does not parse it inside the timing. Each answer is checked once, outside the timing: no
errors, the expected number of rows, and the same ids (in the same order for ``page``) as the
floor.

    python -m bench.b1_read
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from backend.database import tables
from backend.database.engine import Database
from bench._common import BACKENDS, database, interleaved, median, print_table
from bench._floor import Floor, open_floor
from bench._server import Server

TASKS = 100
MAP_INDEXES = 100  # TASKS * MAP_INDEXES = 10,000 task runs in the measured flow run
OTHER_TASK_RUNS = 300
PAGE = 100
# The compiled read path (the server's default) and Strawberry's executor, its reference.
# RUNVIEW_BENCH_PATHS=compiled measures only the default path (a before/after pair in a
# third of the time: the executor's requests are most of B1's).
PATHS = tuple(os.environ.get("RUNVIEW_BENCH_PATHS", "compiled,executor").split(","))
RUNS = {"all": 9, "page": 31}

T0 = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)
_COMPLETED = {"state": "Completed", "state_type": "COMPLETED"}
STATES = [("Completed", "COMPLETED"), ("Failed", "FAILED"), ("Running", "RUNNING")]

QUERIES = {
    "all": """query ($id: uuid!) {
      task_run(where: {flow_run_id: {_eq: $id}}) { id state start_time task { slug } }
    }""",
    "page": """query ($id: uuid!) {
      task_run(where: {flow_run_id: {_eq: $id}}, order_by: {start_time: asc}, limit: 100) {
        id state start_time task { slug }
      }
    }""",
}

_PG_OBJECT = (
    "json_build_object('id', r.id, 'state', r.state, 'start_time', r.start_time,"
    " 'task', json_build_object('slug', t.slug))"
)
_SQLITE_OBJECT = (
    "json_object('id', r.id, 'state', r.state, 'start_time', r.start_time,"
    " 'task', json_object('slug', t.slug))"
)
# The server orders a page by start_time ASC NULLS LAST, then id; so does the floor.
FLOOR_SQL = {
    ("postgresql", "all"): (
        f"SELECT json_agg({_PG_OBJECT})::text FROM task_run r"
        " JOIN task t ON t.id = r.task_id WHERE r.flow_run_id = %s"
    ),
    ("postgresql", "page"): (
        f"SELECT json_agg({_PG_OBJECT} ORDER BY r.start_time, r.id)::text FROM"
        " (SELECT id, state, start_time, task_id FROM task_run WHERE flow_run_id = %s"
        f" ORDER BY start_time ASC NULLS LAST, id LIMIT {PAGE}) r"
        " JOIN task t ON t.id = r.task_id"
    ),
    ("sqlite", "all"): (
        f"SELECT json_group_array({_SQLITE_OBJECT}) FROM task_run r"
        " JOIN task t ON t.id = r.task_id WHERE r.flow_run_id = ?"
    ),
    ("sqlite", "page"): (
        f"SELECT json_group_array({_SQLITE_OBJECT}) FROM"
        " (SELECT id, state, start_time, task_id FROM task_run WHERE flow_run_id = ?"
        f" ORDER BY start_time ASC NULLS LAST, id LIMIT {PAGE}) r"
        " JOIN task t ON t.id = r.task_id"
    ),
}


@dataclass
class Result:
    backend: str
    path: str
    case: str
    rows: int
    runs: int
    queries: int
    statements: int
    server_ms: float
    floor_ms: float


async def seed(url: str) -> uuid.UUID:
    """Fill the database; return the id of the flow run with 10,000 task runs."""
    flow_id, big, small = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    task_ids = [uuid.uuid4() for _ in range(TASKS)]
    task_runs: list[dict[str, Any]] = []
    for position in range(TASKS * MAP_INDEXES):
        task, map_index = divmod(position, MAP_INDEXES)
        state, state_type = STATES[position % len(STATES)]
        task_runs.append(
            {
                "id": uuid.uuid4(),
                "flow_run_id": big,
                "task_id": task_ids[task],
                "map_index": map_index,
                "name": f"task-{task}",
                "state": state,
                "state_type": state_type,
                # Not in insertion order, so ordering by start_time has work to do.
                "start_time": T0 + dt.timedelta(milliseconds=(position * 7919) % 10_007),
            }
        )
    for position in range(OTHER_TASK_RUNS):
        task_runs.append(
            {
                "id": uuid.uuid4(),
                "flow_run_id": small,
                "task_id": task_ids[position % TASKS],
                "map_index": position // TASKS,
                "name": "other",
                **_COMPLETED,
                "start_time": T0 - dt.timedelta(seconds=position),
            }
        )
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
            await conn.execute(
                sa.insert(tables.flow_run),
                [
                    {"id": big, "flow_id": flow_id, "name": "big", **_COMPLETED},
                    {"id": small, "flow_id": flow_id, "name": "small", **_COMPLETED},
                ],
            )
            await conn.execute(sa.insert(tables.task_run), task_runs)
    finally:
        await db.dispose()
    return big


def _server_ids(body: bytes) -> list[uuid.UUID]:
    answer = json.loads(body)
    if answer.get("errors") or not answer.get("data"):
        raise RuntimeError(f"the server answered with errors: {str(answer)[:500]}")
    return [uuid.UUID(row["id"]) for row in answer["data"]["task_run"]]


def _check(case: str, body: bytes, floor_text: str, expected: int) -> None:
    """Raise unless server and floor both return ``expected`` rows with the same ids."""
    server_ids = _server_ids(body)
    floor_ids = [uuid.UUID(row["id"]) for row in json.loads(floor_text)]
    if len(server_ids) != expected or len(floor_ids) != expected:
        raise RuntimeError(
            f"{case}: expected {expected} rows; server {len(server_ids)}, floor {len(floor_ids)}"
        )
    same = server_ids == floor_ids if case == "page" else set(server_ids) == set(floor_ids)
    if not same:
        raise RuntimeError(f"{case}: the server and the floor return different rows")


def measure(
    backend: str, path: str, server: Server, floor: Floor, flow_run_id: uuid.UUID
) -> list[Result]:
    results = []
    variables = {"id": str(flow_run_id)}
    for case, expected in (("all", TASKS * MAP_INDEXES), ("page", PAGE)):
        query, sql = QUERIES[case], FLOOR_SQL[backend, case]
        _check(case, server.post(query, variables), floor.fetch(sql, flow_run_id), expected)
        server.statements.clear()
        server.post(query, variables)
        queries, statements = len(server.queries), len(server.statements)
        actions: dict[str, Callable[[], object]] = {
            "server": functools.partial(server.post, query, variables),
            "floor": functools.partial(floor.fetch, sql, flow_run_id),
        }
        times = interleaved(actions, runs=RUNS[case])
        results.append(
            Result(
                backend,
                path,
                case,
                expected,
                RUNS[case],
                queries,
                statements,
                median(times["server"]),
                median(times["floor"]),
            )
        )
    return results


def run_backend(backend: str) -> list[Result]:
    with database(backend) as url:
        flow_run_id = asyncio.run(seed(url))
        floor = open_floor(backend, url)
        try:
            results = []
            for path in PATHS:
                with Server(url, compiled_reads=path == "compiled") as server:
                    results += measure(backend, path, server, floor, flow_run_id)
            return results
        finally:
            floor.close()


def report(results: list[Result]) -> None:
    print_table(
        "B1  task runs of one flow run (medians; floor = one SQL statement building the JSON)",
        [
            *("database", "path", "case", "rows", "runs", "queries", "stmts"),
            *("median ms", "floor ms", "ratio", "+ms"),
        ],
        [
            [
                r.backend,
                r.path,
                r.case,
                r.rows,
                r.runs,
                r.queries,
                r.statements,
                f"{r.server_ms:.1f}",
                f"{r.floor_ms:.1f}",
                f"{r.server_ms / r.floor_ms:.1f}x",
                f"{r.server_ms - r.floor_ms:+.1f}",
            ]
            for r in results
        ],
    )


def main() -> None:
    report([result for backend in BACKENDS for result in run_backend(backend)])


if __name__ == "__main__":
    main()
