"""B4: the results of a 10,000-child mapped parent through the SDK, against a read-files floor.

Sets up, untimed, one flow run made by running a real flow against the real server: ``@task
inc`` (``x + 1``) mapped over ``range(10_000)``, so the server holds a mapped parent
``inc-1`` with 10,000 Completed children, and the SDK's result storage has pickled each
child's value (a small ``int``) to its own local file under a temporary directory (template
``<tmp>/{flow_run_id}/{task_run_id}``, removed at the end). Each child's current state,
``task_run.serialized_state``, carries the reference ``"result": {"location": <path>,
"serializer": "pickle"}`` (as does its COMPLETED row in ``task_run_state.result``). Then times

* ``sdk``: ``TaskRunView.from_task_slug("inc-1", flow_run_id, client=client).get_result()``,
  the expression of the issue, and
* ``floor``: ONE SQL query for the children's 10,000 locations in map_index order, read out of
  ``task_run.serialized_state`` (the column the SDK's answer comes from), then, sequentially,
  ``open`` + ``read`` + ``pickle.loads`` of each file,

and, as a third action, ``lookup``: ``from_task_slug(...)`` alone, to show what the slug lookup
adds. The three alternate (sdk, floor, lookup, sdk, floor, lookup, ...) after one untimed
warm-up of each.

Every timed ``sdk`` call is a cold one: ``from_task_slug`` builds a new view each time, whose
result slot is empty, and ``from_task_slug`` does not go through ``FlowRunView``'s cache of
finished task runs, so nothing is reused but the client and its keep-alive HTTP connection
(one ``sdk.Client`` for the whole run, as a program holds one). The time includes exactly: two
GraphQL requests over loopback HTTP (``task_run_by_slug``, then ``mapped_results`` with the
10,000 rows ``map_index state state_type serialized_state``, ~3.7 MB), everything the server
does for them, gql's parsing of both JSON answers (``json.loads``), the SDK building a
``State`` and a ``ResultRef`` per row, and ``sdk.results.read_results``: the 10,000 files
opened through ``fsspec.open``, read and unpickled on a new pool of 32 threads (one future per
file), handed to it through ``asyncio.to_thread``. The floor includes exactly: the query (sent
on a connection opened beforehand: psycopg 3 on PostgreSQL, default auto-prepare; the standard
library's ``sqlite3`` on SQLite), its rows decoded into Python ``str`` locations, and the
10,000 ``open``/``read``/``pickle.loads``, sequentially in the calling thread. It includes no
HTTP, no GraphQL, no JSON parsing in Python (the database extracts the location), no state
checks (the SDK refuses unfinished children; the floor trusts the data), no serializer lookup
(the floor knows it is pickle) and no fsspec. Both read files the OS has cached (written during
the setup and read on every run), so neither pays for a disk.

Checks (untimed, raise on failure): the flow run and the parent are Completed; the database
holds 10,000 Completed children whose ``serialized_state.result`` is a pickle reference equal to
their COMPLETED history row's ``result``; ``get_result()`` returns ``[1, ..., 10_000]`` in
map_index order and equals the floor's list, before the timing and once more after it.

    python -m bench.b4_results
"""

from __future__ import annotations

import json
import pickle
import sqlite3
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg

from bench._common import (
    BACKENDS,
    database,
    interleaved,
    libpq_conninfo,
    median,
    print_table,
    sqlite_path,
)
from bench._server import Server
from sdk import Client, Flow, ResultStorage, TaskRunView, task

CHILDREN = 10_000
RUNS = 9  # timed runs per action, after one warm-up run
TARGET_RATIO = 2.0  # at most 2x the floor
SLUG = "inc-1"  # the first (and only) call of ``inc`` in the flow


@task
def inc(x: int) -> int:
    return x + 1


def mapped(n: int) -> None:
    inc.map(list(range(n)))


EXPECTED = [x + 1 for x in range(CHILDREN)]

# The children of the mapped parent ``slug`` of one flow run, in map_index order: the location
# of each one's result, extracted from its current state by the database.
_PG_LOCATIONS = (
    "SELECT r.serialized_state -> 'result' ->> 'location' FROM task_run r"
    " JOIN task t ON t.id = r.task_id"
    " WHERE r.flow_run_id = %s AND t.slug = %s AND r.map_index >= 0 ORDER BY r.map_index"
)
_SQLITE_LOCATIONS = (
    "SELECT json_extract(r.serialized_state, '$.result.location') FROM task_run r"
    " JOIN task t ON t.id = r.task_id"
    " WHERE r.flow_run_id = ? AND t.slug = ? AND r.map_index >= 0 ORDER BY r.map_index"
)
# For the checks: every child's state, current result reference and COMPLETED history result.
_CHECK = (
    "SELECT r.map_index, r.state_type, r.serialized_state, s.result FROM task_run r"
    " JOIN task t ON t.id = r.task_id"
    " LEFT JOIN task_run_state s ON s.task_run_id = r.id AND s.type = 'COMPLETED'"
    " WHERE r.flow_run_id = ? AND t.slug = ? AND r.map_index >= 0 ORDER BY r.map_index"
)
_PARENT = (
    "SELECT r.state_type FROM task_run r JOIN task t ON t.id = r.task_id"
    " WHERE r.flow_run_id = ? AND t.slug = ? AND r.map_index = -1"
)


class Floor(Protocol):
    dialect: str

    def locations(self, flow_run_id: uuid.UUID, slug: str) -> list[str]:
        """The result locations of the children of ``slug``, in map_index order (ONE query)."""
        ...

    def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a read (``?`` placeholders), for the checks."""
        ...

    def close(self) -> None: ...


class PostgresFloor:
    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self._conn: psycopg.Connection[Any] = psycopg.connect(libpq_conninfo(url), autocommit=True)

    def locations(self, flow_run_id: uuid.UUID, slug: str) -> list[str]:
        rows = self._conn.execute(_PG_LOCATIONS, (flow_run_id, slug)).fetchall()
        return [row[0] for row in rows]

    def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql.replace("?", "%s"), params).fetchall()

    def close(self) -> None:
        self._conn.close()


class SqliteFloor:
    dialect = "sqlite"

    def __init__(self, url: str) -> None:
        self._conn = sqlite3.connect(sqlite_path(url))

    def locations(self, flow_run_id: uuid.UUID, slug: str) -> list[str]:
        rows = self._conn.execute(_SQLITE_LOCATIONS, (flow_run_id.hex, slug)).fetchall()
        return [row[0] for row in rows]

    def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        values = [p.hex if isinstance(p, uuid.UUID) else p for p in params]
        return self._conn.execute(sql, values).fetchall()

    def close(self) -> None:
        self._conn.close()


def open_floor(backend: str, url: str) -> Floor:
    return SqliteFloor(url) if backend == "sqlite" else PostgresFloor(url)


def floor_results(floor: Floor, flow_run_id: uuid.UUID, slug: str) -> list[Any]:
    """The floor: one query for the locations, then each file read and unpickled in turn."""
    values = []
    for location in floor.locations(flow_run_id, slug):
        with open(location, "rb") as file:
            values.append(pickle.loads(file.read()))  # noqa: S301 - the benchmark's own files
    return values


def sdk_results(client: Client, flow_run_id: uuid.UUID) -> Any:
    """The SDK, cold: a new view (empty result slot) for every call."""
    return TaskRunView.from_task_slug(SLUG, flow_run_id, client=client).get_result()


@dataclass
class Result:
    backend: str
    children: int
    runs: int
    queries: int
    statements: int
    sdk_ms: float
    lookup_ms: float
    floor_ms: float


def setup(client: Client, results: Path) -> uuid.UUID:
    """Run the mapped flow against the server; its flow run's id."""
    storage = ResultStorage(f"{results}/{{flow_run_id}}/{{task_run_id}}")
    flow = Flow(mapped, name="bench-b4", result_storage=storage, client=client)
    state = flow(CHILDREN, return_state=True)
    if state.type != "COMPLETED":
        raise RuntimeError(f"the mapped flow run ended {state.name}: {state.message}")
    return uuid.UUID(str(state.flow_run_id))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def check_database(floor: Floor, flow_run_id: uuid.UUID, results: Path) -> None:
    """Raise unless the parent and its 10,000 children are Completed, each child with a pickle
    reference under ``results`` that its COMPLETED history row carries too."""
    [(parent,)] = floor.fetch(_PARENT, flow_run_id, SLUG)
    if parent != "COMPLETED":
        raise RuntimeError(f"the mapped parent {SLUG} is {parent}, not COMPLETED")
    rows = floor.fetch(_CHECK, flow_run_id, SLUG)
    if [row[0] for row in rows] != list(range(CHILDREN)):
        raise RuntimeError(f"expected children 0..{CHILDREN - 1} once each; got {len(rows)} rows")
    for map_index, state_type, serialized, history in rows:
        ref = (_json(serialized) or {}).get("result")
        if (
            state_type != "COMPLETED"
            or not isinstance(ref, dict)
            or ref.get("serializer") != "pickle"
            or not str(ref.get("location", "")).startswith(str(results))
            or _json(history) != ref
        ):
            raise RuntimeError(
                f"child {map_index}: {state_type}, reference {ref!r}, history {history!r}"
            )


def check_answers(sdk: Any, floor: list[Any]) -> None:
    if sdk != EXPECTED:
        raise RuntimeError(f"get_result() returned {str(sdk)[:200]}, not [1, ..., {CHILDREN}]")
    if floor != sdk:
        raise RuntimeError("the floor read other values than get_result() returned")


def measure(
    backend: str, server: Server, client: Client, floor: Floor, flow_run_id: uuid.UUID
) -> Result:
    check_answers(sdk_results(client, flow_run_id), floor_results(floor, flow_run_id, SLUG))
    # One more cold call, its statements counted (both requests: the lookup and the rows).
    server.statements.clear()
    sdk_results(client, flow_run_id)
    queries, statements = len(server.queries), len(server.statements)
    actions: dict[str, Callable[[], object]] = {
        "sdk": lambda: sdk_results(client, flow_run_id),
        "floor": lambda: floor_results(floor, flow_run_id, SLUG),
        "lookup": lambda: TaskRunView.from_task_slug(SLUG, flow_run_id, client=client),
    }
    times = interleaved(actions, runs=RUNS)
    check_answers(sdk_results(client, flow_run_id), floor_results(floor, flow_run_id, SLUG))
    return Result(
        backend,
        CHILDREN,
        RUNS,
        queries,
        statements,
        median(times["sdk"]),
        median(times["lookup"]),
        median(times["floor"]),
    )


def run_backend(backend: str) -> Result:
    with (
        database(backend) as url,
        Server(url) as server,
        tempfile.TemporaryDirectory(prefix="runview_bench_results_") as directory,
    ):
        results = Path(directory)
        client = Client(f"{server.url}/graphql")
        try:
            flow_run_id = setup(client, results)
            floor = open_floor(backend, url)
            try:
                check_database(floor, flow_run_id, results)
                return measure(backend, server, client, floor, flow_run_id)
            finally:
                floor.close()
        finally:
            client.close()


def _verdict(r: Result) -> str:
    met = r.sdk_ms <= TARGET_RATIO * r.floor_ms
    return f"<={TARGET_RATIO:g}x {'met' if met else 'missed'}"


def report(results: list[Result]) -> None:
    print_table(
        f"B4  TaskRunView.from_task_slug(...).get_result() of a {CHILDREN:,}-child parent"
        " (medians; floor = one query for the locations + reading and unpickling the files)",
        [
            *("database", "children", "runs", "queries", "stmts"),
            *("median ms", "lookup ms", "floor ms", "ratio", "+ms", "target"),
        ],
        [
            [
                r.backend,
                r.children,
                r.runs,
                r.queries,
                r.statements,
                f"{r.sdk_ms:.1f}",
                f"{r.lookup_ms:.1f}",
                f"{r.floor_ms:.1f}",
                f"{r.sdk_ms / r.floor_ms:.1f}x",
                f"{r.sdk_ms - r.floor_ms:+.1f}",
                _verdict(r),
            ]
            for r in results
        ],
    )


def main() -> None:
    report([run_backend(backend) for backend in BACKENDS])


if __name__ == "__main__":
    main()
