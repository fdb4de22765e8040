"""B3: the runtime, end to end: a flow maps a trivial task over 10,000 items against the server.

Each server run is a fresh flow run of the same flow, run by the SDK exactly as a user runs it::

    @task
    def inc(x): return x + 1

    @flow(name="b3")
    def mapped(): inc.map(range(10_000))

with its default runtime (a pool of 32 threads, state proposals batched by the flow run's
``StateBatcher``, results pickled to the local filesystem) talking over HTTP to the real server
(uvicorn on loopback, in a thread of this process) through a ``sdk.Client`` pointed at
``<server>/graphql``. Results go to ``<temporary RUNVIEW_HOME>/results/{flow_run_id}/
{task_run_id}`` (the default layout), removed at the end. A server time is the wall time of the
call ``mapped(return_state=True)``: creating the flow run, the parent and its 10,000 children,
running them, recording every state, writing 10,001 result files (children + the flow's), the
final states.

What the server records per flow run (read back from the database after the runs): one
``flow_run`` row and its 4 ``flow_run_state`` rows (Scheduled, Pending, Running, Completed),
10,001 ``task_run`` rows (the mapped parent and its 10,000 children, each Completed at version
3 with one attempt) and 30,003 ``task_run_state`` rows (Pending, Running, Completed for each).

The floor writes the same rows, with the same columns filled and values of the same shape
(ids, times, the serialized states with their result locations), straight through the driver:
psycopg 3 (the server's driver) on PostgreSQL, the standard library's ``sqlite3`` with the
server's pragmas on SQLite, each table's rows in batches of 1,000, one ``executemany`` and one
transaction per batch, on a connection opened before timing starts. Its time includes building
every row value in Python (``uuid4``, timestamps, the serialized states and their JSON). It
does not include running the tasks, writing result files, HTTP, GraphQL, the orchestration rules
or the intermediate states: it inserts each run row once, in its final state, where the server
creates it Pending and updates it twice.

Server and floor runs alternate (``interleaved``, one untimed warm-up each). Checks, untimed,
after the timing, raise on failure: every flow run, the server's and the floor's, is Completed
with exactly 10,000 Completed children (map indexes 0..9,999) and a Completed parent, each with
exactly one Pending, one Running and one Completed history row (the Completed one of each child
carrying its result reference); every server run left 10,001 result files, and a child's result
reads back as its input + 1; and a server row and a floor row of every kind have the same
columns set and the same values but for ids, times and result locations.

    python -m bench.b3_runtime
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
from sdk import Flow, ResultRef, ResultStorage, task
from sdk.client import Client
from sdk.documents import Document
from sdk.results.storage import read_result
from sdk.settings import SDKSettings

ITEMS = 10_000  # mapped children per flow run
BATCH = 1_000  # rows per floor transaction
RUNS = 5  # timed runs per database, after one warm-up run
TARGET_RATIO = 5.0  # at most 5x the floor
FLOW = "b3"
TASK_SLUG = "inc-1"  # the slug the SDK gives the first call of `inc` in a flow run
TASK_RUNS = ITEMS + 1  # children + the mapped parent
STATE_ROWS = 3 * TASK_RUNS  # Pending, Running, Completed for each


@task
def inc(x: int) -> int:
    return x + 1


def _mapped() -> None:
    inc.map(range(ITEMS))


class CountingClient(Client):
    """The SDK's client, noting the name of every document it sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: Counter[str] = Counter()

    async def _execute(
        self, document: Document, variables: dict[str, Any] | None, *args: Any, **kwargs: Any
    ) -> Any:
        self.sent[document.name] += 1  # on the SDK's one event loop thread
        return await super()._execute(document, variables, *args, **kwargs)


# Columns the server fills (non-NULL) in each table, in the floor's INSERT order.
_FLOW_RUN_COLUMNS = (
    *("id", "flow_id", "name", "parameters", "context", "labels", "state", "state_type"),
    *("state_timestamp", "serialized_state", "version", "scheduled_start_time", "start_time"),
    *("end_time", "idempotency_key", "created", "updated"),
)
_TASK_RUN_COLUMNS = (
    *("id", "flow_run_id", "task_id", "map_index", "name", "state", "state_type"),
    *("state_timestamp", "serialized_state", "version", "run_count", "start_time", "end_time"),
    *("created", "updated"),
)
# `result` is set on a child's Completed row only; the column is sent (NULL) for every row.
_HISTORY_COLUMNS = ("id", "timestamp", "state", "type", "result", "details", "serialized_state")


def _insert(table: str, columns: Sequence[str], placeholder: str) -> str:
    return (
        f"INSERT INTO {table} ({', '.join(columns)})"
        f" VALUES ({', '.join([placeholder] * len(columns))})"
    )


def _history_columns(run: str) -> tuple[str, ...]:
    return (_HISTORY_COLUMNS[0], f"{run}_id", *_HISTORY_COLUMNS[1:], "version")


def _state(type_: str, name: str, at: dt.datetime, result: Any = None) -> dict[str, Any]:
    """A serialized state as the server stores it."""
    return {
        "type": type_,
        "name": name,
        "message": None,
        "timestamp": at.isoformat(),
        "result": result,
        "details": {},
    }


@dataclass
class Rows:
    """One flow run's rows, in INSERT order, as this driver's parameter tuples."""

    flow_run: list[tuple[Any, ...]] = field(default_factory=list)
    flow_run_states: list[tuple[Any, ...]] = field(default_factory=list)
    task_runs: list[tuple[Any, ...]] = field(default_factory=list)
    task_run_states: list[tuple[Any, ...]] = field(default_factory=list)


_STEPS = (("PENDING", "Pending"), ("RUNNING", "Running"), ("COMPLETED", "Completed"))


def build_rows(
    flow_id: uuid.UUID,
    task_id: uuid.UUID,
    results_dir: str,
    key: Callable[[uuid.UUID], Any],
    stamp: Callable[[dt.datetime], Any],
    js: Callable[[Any], Any],
) -> tuple[uuid.UUID, Rows]:
    """The rows of one flow run mapped over ``ITEMS``, as the server leaves them; ``key``,
    ``stamp`` and ``js`` turn ids, times and JSON into what the driver stores."""
    rows = Rows()
    run_id = uuid.uuid4()
    run_key = key(run_id)
    scheduled, pending, running = utcnow(), utcnow(), utcnow()

    def ref(task_run_id: str) -> dict[str, str]:
        return {"location": f"{results_dir}/{run_id}/{task_run_id}", "serializer": "pickle"}

    def history(
        run: Any, times: Sequence[dt.datetime], steps: Sequence[tuple[str, str]], result: Any
    ) -> list[tuple[Any, ...]]:
        out = []
        for version, ((type_, name), at) in enumerate(zip(steps, times, strict=True), 1):
            done = result if type_ == "COMPLETED" else None
            out.append(
                (key(uuid.uuid4()), run, stamp(at), name, type_, js(done), js({}))
                + (js(_state(type_, name, at, done)), version)
            )
        return out

    # The mapped parent first, then its children (the parent is Completed last).
    parent_id = uuid.uuid4()
    parent_times = (utcnow(), utcnow())
    children = []
    for map_index in range(ITEMS):
        id = uuid.uuid4()
        created, started, ended = utcnow(), utcnow(), utcnow()
        result = ref(str(id))
        final = js(_state("COMPLETED", "Completed", ended, result))
        id_key = key(id)
        children.append(
            (id_key, run_key, key(task_id), map_index, "inc", "Completed", "COMPLETED")
            + (stamp(ended), final, 3, 1, stamp(started), stamp(ended), stamp(created))
            + (stamp(ended),)
        )
        rows.task_run_states += history(id_key, (created, started, ended), _STEPS, result)
    parent_end = utcnow()
    parent_key = key(parent_id)
    rows.task_runs.append(
        (parent_key, run_key, key(task_id), -1, "inc", "Completed", "COMPLETED")
        + (stamp(parent_end), js(_state("COMPLETED", "Completed", parent_end)), 3, 1)
        + (stamp(parent_times[1]), stamp(parent_end), stamp(parent_times[0]), stamp(parent_end))
    )
    rows.task_runs += children
    rows.task_run_states = (
        history(parent_key, (*parent_times, parent_end), _STEPS, None) + rows.task_run_states
    )
    # The flow run: Completed with its flow's result reference (the flow returns None).
    end = utcnow()
    flow_result = ref("flow-result")
    rows.flow_run.append(
        (run_key, key(flow_id), f"run-{run_id.hex[:8]}", js({}), js({}), js([]), "Completed")
        + ("COMPLETED", stamp(end), js(_state("COMPLETED", "Completed", end, flow_result)), 4)
        + (stamp(scheduled), stamp(running), stamp(end), str(uuid.uuid4()), stamp(scheduled))
        + (stamp(end),)
    )
    flow_steps = (("SCHEDULED", "Scheduled"), *_STEPS)
    rows.flow_run_states = history(
        run_key, (scheduled, pending, running, end), flow_steps, flow_result
    )
    return run_id, rows


class Floor(Protocol):
    results_dir: str
    written: list[uuid.UUID]  # the flow runs it wrote

    def write(self) -> None:
        """Insert the rows of one more flow run, in batches of ``BATCH``."""
        ...

    def fetch(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """Rows of a read (``?`` placeholders) as dicts, for the checks."""
        ...

    def close(self) -> None: ...


class _Floor:
    """What both floors share: their own flow and task (made before timing), the batches."""

    _TABLES = (
        ("flow_run", _FLOW_RUN_COLUMNS, "flow_run"),
        ("flow_run_state", _history_columns("flow_run"), "flow_run_states"),
        ("task_run", _TASK_RUN_COLUMNS, "task_runs"),
        ("task_run_state", _history_columns("task_run"), "task_run_states"),
    )
    placeholder = "?"

    def __init__(self, results_dir: str) -> None:
        self.results_dir = results_dir
        self.written: list[uuid.UUID] = []
        self.flow_id, self.task_id = uuid.uuid4(), uuid.uuid4()
        self._inserts = [
            (_insert(table, columns, self.placeholder), attribute)
            for table, columns, attribute in self._TABLES
        ]

    def _setup(self, execute: Callable[[str, tuple[Any, ...]], Any], key: Any, js: Any) -> None:
        p = self.placeholder
        now = self._stamp(utcnow())
        execute(
            "INSERT INTO flow (id, name, version, created, updated)"
            f" VALUES ({p}, {p}, 1, {p}, {p})",
            (key(self.flow_id), f"{FLOW}-floor", now, now),
        )
        execute(
            "INSERT INTO task (id, flow_id, slug, name, mapped, max_retries, retry_delay_seconds,"
            f" tags) VALUES ({p}, {p}, {p}, 'inc', {p}, 0, 0.0, {p})",
            (key(self.task_id), key(self.flow_id), TASK_SLUG, True, js([])),
        )

    def _stamp(self, at: dt.datetime) -> Any:
        raise NotImplementedError

    def _batches(self, rows: Rows) -> list[tuple[str, list[tuple[Any, ...]]]]:
        out = []
        for sql, attribute in self._inserts:
            values: list[tuple[Any, ...]] = getattr(rows, attribute)
            out += [(sql, values[i : i + BATCH]) for i in range(0, len(values), BATCH)]
        return out


class PostgresFloor(_Floor):
    """psycopg 3 with its defaults (auto-prepare; ``executemany`` pipelines the rows).

    Values as the server sends them: ``uuid.UUID`` ids, aware UTC datetimes, JSON through
    ``Jsonb`` with the server's ``json_serializer`` (encoded inside the timing, by psycopg).
    """

    placeholder = "%s"

    def __init__(self, url: str, results_dir: str) -> None:
        super().__init__(results_dir)
        self._conn: psycopg.Connection[Any] = psycopg.connect(libpq_conninfo(url), autocommit=True)
        with self._conn.transaction():
            self._setup(self._conn.execute, lambda id: id, self._js)

    def _stamp(self, at: dt.datetime) -> Any:
        return at

    @staticmethod
    def _js(value: Any) -> Any:
        return None if value is None else Jsonb(value, json_serializer)

    def write(self) -> None:
        run_id, rows = build_rows(
            self.flow_id, self.task_id, self.results_dir, lambda id: id, self._stamp, self._js
        )
        cursor = self._conn.cursor()
        for sql, batch in self._batches(rows):
            with self._conn.transaction():
                cursor.executemany(sql, batch)
        self.written.append(run_id)

    def fetch(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        cursor = self._conn.execute(sql.replace("?", "%s"), params)
        names = [column.name for column in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        self._conn.close()


class SqliteFloor(_Floor):
    """The standard library's ``sqlite3`` on the server's file, with the server's pragmas
    (foreign keys on, WAL, busy timeout; ``synchronous`` at its default, as the server leaves
    it); each batch ``BEGIN IMMEDIATE`` (the write lock the server takes), ``executemany``,
    ``COMMIT``. Values as SQLAlchemy stores them: 32-digit hex ids, naive UTC timestamp text,
    the server's canonical JSON text."""

    def __init__(self, url: str, results_dir: str) -> None:
        super().__init__(results_dir)
        self._conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
        for pragma in (
            "PRAGMA foreign_keys = ON",
            "PRAGMA journal_mode = WAL",
            "PRAGMA busy_timeout = 30000",
        ):
            self._conn.execute(pragma)
        self._conn.execute("BEGIN IMMEDIATE")
        self._setup(self._conn.execute, self._key, self._js)
        self._conn.execute("COMMIT")

    @staticmethod
    def _key(id: uuid.UUID) -> str:
        return id.hex

    def _stamp(self, at: dt.datetime) -> Any:
        return at.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

    @staticmethod
    def _js(value: Any) -> Any:
        return None if value is None else json_serializer(value)

    def write(self) -> None:
        run_id, rows = build_rows(
            self.flow_id, self.task_id, self.results_dir, self._key, self._stamp, self._js
        )
        conn = self._conn
        for sql, batch in self._batches(rows):
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(sql, batch)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self.written.append(run_id)

    def fetch(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        values = [p.hex if isinstance(p, uuid.UUID) else p for p in params]
        cursor = self._conn.execute(sql, values)
        names = [column[0] for column in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        self._conn.close()


def open_floor(backend: str, url: str, results_dir: str) -> Floor:
    if backend == "sqlite":
        return SqliteFloor(url, results_dir)
    return PostgresFloor(url, results_dir)


@dataclass
class ServerRun:
    flow_run_id: uuid.UUID
    state: str
    requests: Counter[str]
    statements: int


class Runtime:
    """The SDK side: one client and one flow for the whole benchmark on a database."""

    def __init__(self, server: Server, home: Path) -> None:
        self.server = server
        self.home = home
        self.results_dir = str(home / "results")
        # The SDK's client, as RUNVIEW_API_URL=<server>/graphql would configure it.
        self.client = CountingClient(f"{server.url}/graphql", settings=SDKSettings(home=home))
        storage = ResultStorage(f"{self.results_dir}/{{flow_run_id}}/{{task_run_id}}")
        self.flow = Flow(_mapped, name=FLOW, client=self.client, result_storage=storage)
        self.runs: list[ServerRun] = []

    def run(self) -> None:
        before, statements = Counter(self.client.sent), len(self.server.statements)
        state = self.flow(return_state=True)
        self.runs.append(
            ServerRun(
                state.flow_run_id,
                state.type,
                self.client.sent - before,
                len(self.server.statements) - statements,
            )
        )

    def close(self) -> None:
        self.client.close()


# Checks (untimed)


def _by(rows: list[dict[str, Any]], *columns: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """``rows`` as {group columns: the other columns}, the group columns' values first."""
    out = {}
    for row in rows:
        values = list(row.values())
        out[tuple(values[: len(columns)])] = tuple(values[len(columns) :])
    return out


_KIND = "CASE WHEN map_index >= 0 THEN 'child' ELSE 'parent' END"


def check_flow_run(floor: Floor, flow_run_id: uuid.UUID) -> None:
    """Raise unless the flow run holds exactly the rows a finished 10,000-item map leaves."""
    fetch = floor.fetch
    problems = []
    [run] = fetch("SELECT state_type, version FROM flow_run WHERE id = ?", flow_run_id) or [{}]
    if run != {"state_type": "COMPLETED", "version": 4}:
        problems.append(f"flow run {run}")
    flow_states = _by(
        fetch(
            "SELECT type, version, count(*) AS n FROM flow_run_state WHERE flow_run_id = ?"
            " GROUP BY type, version",
            flow_run_id,
        ),
        "type",
        "version",
    )
    expected_flow_states = {
        ("SCHEDULED", 1): (1,),
        ("PENDING", 2): (1,),
        ("RUNNING", 3): (1,),
        ("COMPLETED", 4): (1,),
    }
    if flow_states != expected_flow_states:
        problems.append(f"flow run states {flow_states}")
    task_runs = _by(
        fetch(
            f"SELECT {_KIND} AS kind, state_type, version, run_count, count(*) AS n,"
            " count(DISTINCT map_index) AS indexes, min(map_index) AS lo, max(map_index) AS hi"
            " FROM task_run WHERE flow_run_id = ? GROUP BY 1, 2, 3, 4",
            flow_run_id,
        ),
        "kind",
        "state_type",
        "version",
        "run_count",
    )
    expected_runs = {
        ("child", "COMPLETED", 3, 1): (ITEMS, ITEMS, 0, ITEMS - 1),
        ("parent", "COMPLETED", 3, 1): (1, 1, -1, -1),
    }
    if task_runs != expected_runs:
        problems.append(f"task runs {task_runs}")
    history = _by(
        fetch(
            f"SELECT {_KIND} AS kind, s.type, s.version, count(*) AS n,"
            " count(DISTINCT s.task_run_id) AS runs, count(s.result) AS results"
            " FROM task_run_state s JOIN task_run r ON r.id = s.task_run_id"
            " WHERE r.flow_run_id = ? GROUP BY 1, 2, 3",
            flow_run_id,
        ),
        "kind",
        "type",
        "version",
    )
    expected_history = {
        ("child", "PENDING", 1): (ITEMS, ITEMS, 0),
        ("child", "RUNNING", 2): (ITEMS, ITEMS, 0),
        ("child", "COMPLETED", 3): (ITEMS, ITEMS, ITEMS),
        ("parent", "PENDING", 1): (1, 1, 0),
        ("parent", "RUNNING", 2): (1, 1, 0),
        ("parent", "COMPLETED", 3): (1, 1, 0),
    }
    if history != expected_history:
        problems.append(f"task run states {history}")
    if problems:
        raise RuntimeError(f"flow run {flow_run_id}: " + "; ".join(problems))


def check_results(floor: Floor, flow_run_id: uuid.UUID) -> None:
    """Raise unless a server run left one result file per child plus the flow's, readable."""
    files = os.listdir(Path(floor.results_dir) / str(flow_run_id))
    if len(files) != ITEMS + 1:
        raise RuntimeError(f"flow run {flow_run_id} left {len(files)} result files")
    last = ITEMS - 1  # inc(last) == ITEMS
    [row] = floor.fetch(
        "SELECT serialized_state FROM task_run WHERE flow_run_id = ? AND map_index = ?",
        flow_run_id,
        last,
    )
    state = row["serialized_state"]
    state = json.loads(state) if isinstance(state, str) else state
    value = read_result(ResultRef.from_dict(state["result"], run=f"child {last}"))
    if value != ITEMS:
        raise RuntimeError(f"child {last} of {flow_run_id} has the result {value!r}, not {ITEMS}")


# Columns whose values differ between any two runs: ids, times, the run's name and key.
_VARYING = {
    *("id", "flow_id", "flow_run_id", "task_id", "task_run_id", "idempotency_key"),
    *("timestamp", "state_timestamp", "scheduled_start_time", "start_time", "end_time"),
    *("created", "updated", "heartbeat"),
}
_JSON = {"parameters", "context", "labels", "serialized_state", "result", "details"}
# Set or not depending on how long the run took: the SDK's heartbeat thread beats every
# ``heartbeat_interval_seconds`` (10 s) until the task runs are done, so a run over 10 s has
# one and a faster run none. The floor writes none.
_UNCOMPARED = {"heartbeat"}


def _json_shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: "<set>" if key in ("timestamp", "location") else _json_shape(item)
            for key, item in value.items()
        }
    return value


def _shape(row: dict[str, Any], varying: set[str]) -> dict[str, Any]:
    """``row`` with ids and times reduced to "set", JSON parsed, its times and locations too."""
    out: dict[str, Any] = {}
    for column, value in row.items():
        if column in _UNCOMPARED:
            continue
        if value is None or column not in varying | _JSON:
            out[column] = value
        elif column in _JSON:
            out[column] = _json_shape(json.loads(value) if isinstance(value, str) else value)
        else:
            out[column] = "<set>"
    return out


def _samples(floor: Floor, flow_run_id: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    """One row of every kind a flow run writes, normalised by ``_shape``."""
    fetch = floor.fetch
    runs = (
        "SELECT * FROM task_run WHERE flow_run_id = ? AND map_index IN (-1, 5) ORDER BY map_index"
    )
    states = (
        "SELECT s.* FROM task_run_state s JOIN task_run r ON r.id = s.task_run_id"
        " WHERE r.flow_run_id = ? AND r.map_index IN (-1, 5) ORDER BY r.map_index, s.version"
    )
    return {
        "flow_run": [
            _shape(row, _VARYING | {"name"})
            for row in fetch("SELECT * FROM flow_run WHERE id = ?", flow_run_id)
        ],
        "flow_run_state": [
            _shape(row, _VARYING)
            for row in fetch(
                "SELECT * FROM flow_run_state WHERE flow_run_id = ? ORDER BY version", flow_run_id
            )
        ],
        "task_run": [_shape(row, _VARYING) for row in fetch(runs, flow_run_id)],
        "task_run_state": [_shape(row, _VARYING) for row in fetch(states, flow_run_id)],
    }


def check_same_rows(floor: Floor, server_run: uuid.UUID, floor_run: uuid.UUID) -> None:
    """Raise unless the floor wrote rows of the same shape as the server."""
    server, written = _samples(floor, server_run), _samples(floor, floor_run)
    for kind, rows in server.items():
        if rows != written[kind]:
            raise RuntimeError(
                f"the server and the floor wrote different {kind} rows:"
                f"\n  server {rows}\n  floor  {written[kind]}"
            )


@dataclass
class Result:
    backend: str
    runs: int
    requests: float  # median per flow run
    state_requests: float  # of which set_task_run_states
    statements: float  # median SQL statements per flow run
    server_ms: float
    floor_ms: float


def run_backend(backend: str) -> Result:
    with tempfile.TemporaryDirectory(prefix="runview_bench_b3_") as home, database(backend) as url:
        with Server(url) as server:
            runtime = Runtime(server, Path(home))
            floor = open_floor(backend, url, runtime.results_dir)
            try:
                actions: dict[str, Callable[[], object]] = {
                    "server": runtime.run,
                    "floor": floor.write,
                }
                times = interleaved(actions, runs=RUNS)
                for run in runtime.runs:
                    if run.state != "COMPLETED":
                        raise RuntimeError(f"flow run {run.flow_run_id} ended {run.state}")
                    check_flow_run(floor, run.flow_run_id)
                    check_results(floor, run.flow_run_id)
                for flow_run_id in floor.written:
                    check_flow_run(floor, flow_run_id)
                check_same_rows(floor, runtime.runs[-1].flow_run_id, floor.written[-1])
                timed = runtime.runs[-RUNS:]  # the warm-up run left out
                return Result(
                    backend,
                    RUNS,
                    median([sum(run.requests.values()) for run in timed]),
                    median([run.requests["set_task_run_states"] for run in timed]),
                    median([run.statements for run in timed]),
                    median(times["server"]),
                    median(times["floor"]),
                )
            finally:
                floor.close()
                runtime.close()


def _verdict(r: Result) -> str:
    ratio = r.server_ms / r.floor_ms
    return f"<={TARGET_RATIO:g}x {'met' if ratio <= TARGET_RATIO else 'missed'}"


def report(results: list[Result]) -> None:
    print_table(
        f"B3  a flow mapping a trivial task over {ITEMS:,} items (medians per flow run;"
        f" floor = the same rows inserted through the driver in batches of {BATCH:,})",
        [
            *("database", "task runs", "state rows", "runs", "requests", "state reqs", "stmts"),
            *("median ms", "floor ms", "ratio", "+ms", "tasks/s", "target"),
        ],
        [
            [
                r.backend,
                TASK_RUNS,
                STATE_ROWS,
                r.runs,
                f"{r.requests:g}",
                f"{r.state_requests:g}",
                f"{r.statements:g}",
                f"{r.server_ms:.0f}",
                f"{r.floor_ms:.0f}",
                f"{r.server_ms / r.floor_ms:.1f}x",
                f"{r.server_ms - r.floor_ms:+.0f}",
                f"{ITEMS / r.server_ms * 1000:,.0f}",
                _verdict(r),
            ]
            for r in results
        ],
    )


def main() -> None:
    report([run_backend(backend) for backend in BACKENDS])


if __name__ == "__main__":
    main()
