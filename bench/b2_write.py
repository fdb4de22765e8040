"""B2: state transitions through ``set_task_run_states``, over HTTP, against a raw-driver floor.

Sets up, untimed and through the server's own mutations, one flow, one flow run proposed
Pending then RUNNING, and one mapped parent task run whose ~20,000 children (one
``get_or_create_mapped_task_run_children`` request) are the task runs to move, each Pending at
version 1 as the server creates it. Every transition, timed or not, takes a task run nobody has
touched, so each is a real Pending -> RUNNING change (version 1 -> 2, run_count 0 -> 1, a start
time, one history row). Then, on the real server (uvicorn, loopback, one keep-alive
``httpx.Client``), times

* ``single``: 200 sequential requests, each carrying ONE proposal ``{type: RUNNING}`` at
  version 1, reported per request (= per transition), and
* ``batch``: one request carrying 1,000 such proposals for 1,000 distinct task runs,

with the SDK's own ``set_task_run_states`` document. The floor does the same writes straight
through the driver, one transaction per request's worth of transitions (see ``PostgresFloor``
and ``SqliteFloor``). Every answer is kept and checked after the timing (each proposal
ACCEPTED, RUNNING, for the run it named), then the database is counted: every task run taken
is RUNNING at version 2 with one attempt and one new history row, every other one untouched,
and a row written by the server and one written by the floor have the same shape.

    python -m bench.b2_write
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

from backend.database.types import json_serializer, utcnow
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
from sdk import documents

SINGLE = 200  # sequential one-proposal requests per timed run
BATCH = 1_000  # proposals in the one request of a timed run
RUNS = 7  # timed runs per case, after one warm-up run
CASES = {"single": (1, SINGLE), "batch": (BATCH, 1)}  # case -> (proposals/request, requests/run)
TARGET_RATIO = 3.0  # single: at most 3x the floor per transition
TARGET_RATE = 5_000  # batch: at least 5,000 transitions/s

SET_TASK_RUN_STATES = documents.SET_TASK_RUN_STATES.text
RUNNING = {"type": "RUNNING"}  # what the SDK proposes when a task run starts

_SETUP = {
    "flow": "mutation ($name: String!) { create_flow(input: {name: $name}) { id } }",
    "flow_run": "mutation ($id: uuid!) { create_flow_run(input: {flow_id: $id}) { id } }",
    "flow_run_state": """mutation ($id: uuid!, $version: Int!, $type: String!) {
      set_flow_run_states(input: {states: [{flow_run_id: $id, version: $version,
                                             state: {type: $type}}]}) { states { status } }
    }""",
    "parent": """mutation ($id: uuid!) {
      get_or_create_task_run(input: {flow_run_id: $id, task_slug: "work"}) { id }
    }""",
    "children": """mutation ($id: uuid!, $max: Int!) {
      get_or_create_mapped_task_run_children(
        input: {flow_run_id: $id, task_slug: "work", max_map_index: $max}) { ids }
    }""",
}

# Every column the server writes to the run row, in this order (backend.models.states).
_UPDATE_COLUMNS = (
    "state",
    "state_type",
    "state_message",
    "state_timestamp",
    "serialized_state",
    "version",
    "start_time",
    "end_time",
    "updated",
    "run_count",
)
_HISTORY_COLUMNS = (
    "id",
    "task_run_id",
    "timestamp",
    "state",
    "type",
    "message",
    "result",
    "details",
    "serialized_state",
    "version",
)


def _sql(placeholder: str) -> tuple[str, str]:
    """The floor's UPDATE and INSERT with this driver's placeholder."""
    update = (
        "UPDATE task_run SET "
        + ", ".join(f"{column} = {placeholder}" for column in _UPDATE_COLUMNS)
        + f" WHERE id = {placeholder}"
    )
    insert = (
        f"INSERT INTO task_run_state ({', '.join(_HISTORY_COLUMNS)})"
        f" VALUES ({', '.join([placeholder] * len(_HISTORY_COLUMNS))})"
    )
    return update, insert


def _running(now: dt.datetime) -> dict[str, Any]:
    """The serialized state the server writes for an accepted ``{type: RUNNING}``."""
    return {
        "type": "RUNNING",
        "name": "Running",
        "message": None,
        "timestamp": now.isoformat(),
        "result": None,
        "details": {},
    }


class Floor(Protocol):
    dialect: str

    def transition(self, ids: Sequence[uuid.UUID]) -> None:
        """Move the Pending task runs ``ids`` to Running in ONE transaction."""
        ...

    def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a read (``?`` placeholders), for the checks."""
        ...

    def close(self) -> None: ...


class PostgresFloor:
    """psycopg 3, the server's driver, on a connection opened before timing starts.

    One transaction: ``SELECT id, version, run_count, start_time FROM task_run WHERE id =
    ANY(ids) ORDER BY id FOR UPDATE``, then the run rows' UPDATE (the ten columns the server
    writes) and the history rows' INSERT, each a single ``execute`` for one transition and an
    ``executemany`` (pipelined by psycopg) for many. JSON goes through psycopg's ``Jsonb``
    with the server's serializer; timestamps are aware datetimes, as the server sends.
    """

    dialect = "postgresql"
    _UPDATE, _INSERT = _sql("%s")
    _LOCK = (
        "SELECT id, version, run_count, start_time FROM task_run"
        " WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
    )
    _LOCK_ONE = "SELECT id, version, run_count, start_time FROM task_run WHERE id = %s FOR UPDATE"

    def __init__(self, url: str) -> None:
        self._conn: psycopg.Connection[Any] = psycopg.connect(libpq_conninfo(url), autocommit=True)

    def transition(self, ids: Sequence[uuid.UUID]) -> None:
        now = utcnow()
        state = _running(now)
        updates: list[tuple[Any, ...]] = []
        history: list[tuple[Any, ...]] = []
        with self._conn.transaction():
            cursor = self._conn.cursor()
            if len(ids) == 1:
                rows = cursor.execute(self._LOCK_ONE, (ids[0],)).fetchall()
            else:
                rows = cursor.execute(self._LOCK, (list(ids),)).fetchall()
            if len(rows) != len(ids):
                raise RuntimeError(f"the floor locked {len(rows)} of {len(ids)} task runs")
            for id, version, run_count, start_time in rows:
                new = version + 1
                values = ("Running", "RUNNING", None, now, Jsonb(state, json_serializer), new)
                updates.append((*values, start_time or now, None, now, run_count + 1, id))
                history.append(
                    (uuid.uuid4(), id, now, "Running", "RUNNING", None, None)
                    + (Jsonb({}, json_serializer), Jsonb(state, json_serializer), new)
                )
            if len(ids) == 1:
                cursor.execute(self._UPDATE, updates[0])
                cursor.execute(self._INSERT, history[0])
            else:
                cursor.executemany(self._UPDATE, updates)
                cursor.executemany(self._INSERT, history)

    def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql.replace("?", "%s"), params).fetchall()

    def close(self) -> None:
        self._conn.close()


class SqliteFloor:
    """The standard library's ``sqlite3`` on the same file, with the server's pragmas
    (foreign keys on, WAL, busy timeout; synchronous left at its default, as the server does).

    One transaction: ``BEGIN IMMEDIATE`` (the write lock, which is what the server takes too),
    ``SELECT id, version, run_count, start_time ... WHERE id IN (...)``, the run rows' UPDATE and
    the history rows' INSERT (``execute`` for one, ``executemany`` for many), ``COMMIT``. Values
    are stored as SQLAlchemy stores them: ids as 32-digit hex, timestamps as naive UTC text,
    JSON as the server's canonical text.
    """

    dialect = "sqlite"
    _UPDATE, _INSERT = _sql("?")

    def __init__(self, url: str) -> None:
        self._conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
        for pragma in (
            "PRAGMA foreign_keys = ON",
            "PRAGMA journal_mode = WAL",
            "PRAGMA busy_timeout = 30000",
        ):
            self._conn.execute(pragma)

    def transition(self, ids: Sequence[uuid.UUID]) -> None:
        now = utcnow()
        stamp = now.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        state = json_serializer(_running(now))
        details = json_serializer({})
        keys = [id.hex for id in ids]
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(
                "SELECT id, version, run_count, start_time FROM task_run"
                f" WHERE id IN ({', '.join('?' * len(keys))}) ORDER BY id",
                keys,
            ).fetchall()
            if len(rows) != len(ids):
                raise RuntimeError(f"the floor locked {len(rows)} of {len(ids)} task runs")
            updates: list[tuple[Any, ...]] = []
            history: list[tuple[Any, ...]] = []
            for id, version, run_count, start_time in rows:
                new = version + 1
                values = ("Running", "RUNNING", None, stamp, state, new, start_time or stamp)
                updates.append((*values, None, stamp, run_count + 1, id))
                history.append(
                    (uuid.uuid4().hex, id, stamp, "Running", "RUNNING", None, None)
                    + (details, state, new)
                )
            if len(ids) == 1:
                conn.execute(self._UPDATE, updates[0])
                conn.execute(self._INSERT, history[0])
            else:
                conn.executemany(self._UPDATE, updates)
                conn.executemany(self._INSERT, history)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        values = [p.hex if isinstance(p, uuid.UUID) else p for p in params]
        return self._conn.execute(sql, values).fetchall()

    def close(self) -> None:
        self._conn.close()


def open_floor(backend: str, url: str) -> Floor:
    return SqliteFloor(url) if backend == "sqlite" else PostgresFloor(url)


class Pool:
    """Pending task runs nobody has touched yet, handed out once each."""

    def __init__(self, ids: Sequence[uuid.UUID]) -> None:
        self._ids, self.taken = list(ids), 0

    def take(self, n: int) -> list[uuid.UUID]:
        if self.taken + n > len(self._ids):
            raise RuntimeError("the benchmark ran out of Pending task runs; seed more")
        ids = self._ids[self.taken : self.taken + n]
        self.taken += n
        return ids


@dataclass
class Result:
    backend: str
    case: str
    per_request: int
    requests: int
    runs: int
    queries: int
    statements: int
    server_ms: float  # median, per request
    floor_ms: float  # median, per transaction of the same transitions


def _data(body: bytes) -> Any:
    answer = json.loads(body)
    if answer.get("errors") or not answer.get("data"):
        raise RuntimeError(f"the server answered with errors: {str(answer)[:500]}")
    return answer["data"]


def setup(server: Server, task_runs: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """One flow, one RUNNING flow run, ``task_runs`` Pending children; their ids."""
    post = server.post
    flow = _data(post(_SETUP["flow"], {"name": "bench"}))["create_flow"]["id"]
    flow_run = _data(post(_SETUP["flow_run"], {"id": flow}))["create_flow_run"]["id"]
    for version, state_type in ((1, "PENDING"), (2, "RUNNING")):
        variables = {"id": flow_run, "version": version, "type": state_type}
        [change] = _data(post(_SETUP["flow_run_state"], variables))["set_flow_run_states"]["states"]
        if change["status"] != "ACCEPTED":
            raise RuntimeError(f"the flow run did not become {state_type}: {change}")
    _data(post(_SETUP["parent"], {"id": flow_run}))
    answer = _data(post(_SETUP["children"], {"id": flow_run, "max": task_runs - 1}))
    ids = answer["get_or_create_mapped_task_run_children"]["ids"]
    return uuid.UUID(flow_run), [uuid.UUID(id) for id in ids]


def _variables(ids: Sequence[uuid.UUID]) -> dict[str, Any]:
    states = [{"task_run_id": str(id), "version": 1, "state": RUNNING} for id in ids]
    return {"input": {"states": states}}


def _check_answer(body: bytes, ids: Sequence[uuid.UUID]) -> None:
    """Raise unless every proposal of the request for ``ids`` was accepted as RUNNING."""
    changes = _data(body)["set_task_run_states"]["states"]
    if [uuid.UUID(change["id"]) for change in changes] != list(ids):
        raise RuntimeError(f"the answer names other task runs than the {len(ids)} proposed")
    for change in changes:
        if change["status"] != "ACCEPTED" or change["state"]["type"] != "RUNNING":
            raise RuntimeError(f"a proposal was not accepted as RUNNING: {change}")


def measure(
    backend: str, server: Server, floor: Floor, pool: Pool
) -> tuple[list[Result], list[uuid.UUID]]:
    """Time both cases; also return one task run moved by the server and one by the floor."""
    results = []
    answers: list[tuple[bytes, list[uuid.UUID]]] = []  # checked after the timing
    floor_ids: list[uuid.UUID] = []
    for case, (per_request, requests) in CASES.items():

        def serve(per_request: int = per_request, requests: int = requests) -> None:
            for _ in range(requests):
                ids = pool.take(per_request)
                answers.append((server.post(SET_TASK_RUN_STATES, _variables(ids)), ids))

        def write(per_request: int = per_request, requests: int = requests) -> None:
            for _ in range(requests):
                ids = pool.take(per_request)
                floor.transition(ids)
                floor_ids.append(ids[0])

        # One untimed request first: its answer checked, its statements counted.
        ids = pool.take(per_request)
        server.statements.clear()
        body = server.post(SET_TASK_RUN_STATES, _variables(ids))
        queries, statements = len(server.queries), len(server.statements)
        _check_answer(body, ids)
        actions: dict[str, Callable[[], object]] = {"server": serve, "floor": write}
        times = interleaved(actions, runs=RUNS)
        results.append(
            Result(
                backend,
                case,
                per_request,
                requests,
                RUNS,
                queries,
                statements,
                median(times["server"]) / requests,
                median(times["floor"]) / requests,
            )
        )
    for body, ids in answers:
        _check_answer(body, ids)
    return results, [answers[0][1][0], floor_ids[0]]


def _normal(row: Sequence[Any], times: set[int], jsons: set[int]) -> tuple[Any, ...]:
    """``row`` with the columns in ``times`` (ids, times) reduced to whether they are set and
    the JSON columns parsed, without their ``timestamp`` (the time of the write)."""
    values: list[Any] = []
    for i, value in enumerate(row):
        if i in times:
            values.append(value is not None)
        elif i in jsons:
            value = json.loads(value) if isinstance(value, str) else value
            if isinstance(value, dict):
                value = {key: item for key, item in value.items() if key != "timestamp"}
            values.append(value)
        else:
            values.append(value)
    return tuple(values)


def check_database(
    floor: Floor, flow_run_id: uuid.UUID, seeded: int, moved: int, compare: list[uuid.UUID]
) -> None:
    """Raise unless exactly the ``moved`` task runs taken changed, each once, and the rows
    the server wrote for ``compare[0]`` equal those the floor wrote for ``compare[1]`` but
    for ids and times."""
    runs = {
        (state_type, version, run_count): n
        for state_type, version, run_count, n in floor.fetch(
            "SELECT state_type, version, run_count, count(*) FROM task_run"
            " WHERE flow_run_id = ? AND map_index >= 0 GROUP BY 1, 2, 3",
            flow_run_id,
        )
    }
    history = {
        (state_type, version): n
        for state_type, version, n in floor.fetch(
            "SELECT s.type, s.version, count(*) FROM task_run_state s"
            " JOIN task_run r ON r.id = s.task_run_id"
            " WHERE r.flow_run_id = ? AND r.map_index >= 0 GROUP BY 1, 2",
            flow_run_id,
        )
    }
    expected_runs = {("RUNNING", 2, 1): moved, ("PENDING", 1, 0): seeded - moved}
    expected_runs = {key: n for key, n in expected_runs.items() if n}
    expected_history = {("PENDING", 1): seeded, ("RUNNING", 2): moved}
    if runs != expected_runs or history != expected_history:
        raise RuntimeError(
            f"after the benchmark: task runs {runs} (expected {expected_runs}),"
            f" history {history} (expected {expected_history})"
        )
    written = [
        (
            [
                _normal(row, times={3, 6, 8}, jsons={4})
                for row in floor.fetch(
                    f"SELECT {', '.join(_UPDATE_COLUMNS)} FROM task_run WHERE id = ?", id
                )
            ],
            [
                _normal(row, times={0, 1, 2}, jsons={6, 7, 8})
                for row in floor.fetch(
                    f"SELECT {', '.join(_HISTORY_COLUMNS)} FROM task_run_state"
                    " WHERE task_run_id = ? AND version = 2",
                    id,
                )
            ],
        )
        for id in compare
    ]
    if written[0] != written[1] or len(written[0][0]) != 1 or len(written[0][1]) != 1:
        raise RuntimeError(f"the server and the floor wrote different rows: {written}")


def task_runs_needed() -> int:
    """Every transition of both cases is a fresh task run: check + (warm-up + RUNS) x 2."""
    return sum(n * (1 + (1 + RUNS) * requests * 2) for n, requests in CASES.values())


def run_backend(backend: str) -> list[Result]:
    with database(backend) as url:
        with Server(url) as server:
            seeded = task_runs_needed()
            flow_run_id, ids = setup(server, seeded)
            pool = Pool(ids)
            floor = open_floor(backend, url)
            try:
                results, compare = measure(backend, server, floor, pool)
                check_database(floor, flow_run_id, seeded, pool.taken, compare)
                return results
            finally:
                floor.close()


def _verdict(r: Result) -> str:
    if r.case == "single":
        ratio = r.server_ms / r.floor_ms
        return f"<={TARGET_RATIO:g}x {'met' if ratio <= TARGET_RATIO else 'missed'}"
    rate = r.per_request / r.server_ms * 1000
    return f">={TARGET_RATE:,}/s {'met' if rate >= TARGET_RATE else 'missed'}"


def report(results: list[Result]) -> None:
    print_table(
        "B2  set_task_run_states, Pending -> RUNNING (medians, ms per request;"
        " floor = the same writes through the driver)",
        [
            *("database", "case", "props/req", "reqs/run", "runs", "queries", "stmts"),
            *("median ms", "floor ms", "ratio", "+ms", "trans/s", "floor/s", "target"),
        ],
        [
            [
                r.backend,
                r.case,
                r.per_request,
                r.requests,
                r.runs,
                r.queries,
                r.statements,
                f"{r.server_ms:.2f}",
                f"{r.floor_ms:.2f}",
                f"{r.server_ms / r.floor_ms:.1f}x",
                f"{r.server_ms - r.floor_ms:+.2f}",
                f"{r.per_request / r.server_ms * 1000:,.0f}",
                f"{r.per_request / r.floor_ms * 1000:,.0f}",
                _verdict(r),
            ]
            for r in results
        ],
    )


def main() -> None:
    report([result for backend in BACKENDS for result in run_backend(backend)])


if __name__ == "__main__":
    main()
