"""Random filters through the real server, checked against a plain-Python model.

Each database is seeded once with flows, tasks, flow runs and task runs whose strings hold
``%``, ``_``, ``\\``, mixed case and non-ASCII letters, and whose ints, timestamps and nullable
columns vary. Hypothesis then writes ``where`` expressions (``_and``/``_or``/``_not``, every
comparison, relationship filters in both directions), ``order_by`` lists (columns, nulls
placement, an object relationship's column) and nested list relationships with their own
filter and order, sends each over HTTP to both read paths (compiled and executor), inline or
as variables, and requires the answer of ``tests.filter_model``: the same ids, in the same order
where an order is asked, the same count. Never a fault.

Bounded for CI: a fixed number of examples per database, derandomized, no example database.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend import models
from backend.database.engine import Database
from backend.models import TABLES, Kind
from tests.conftest import BACKENDS, DatabaseFactory, Server, run
from tests.filter_model import Model

settings.register_profile(
    "filter-fuzz",
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

STRINGS = [
    *("", "a", "A", "ab", "aB", "Ab", "a%b", "a_b", "a\\b", "%", "_", "\\", "\\%", "x y"),
    *("é", "É", "école", "École", "ß", "SS", "z", "Z", "ω", "Ω", "日本", "😀", "Run", "run"),
]
T0 = dt.datetime(2021, 5, 12, 18, 0, 0, 696849, tzinfo=dt.UTC)
TIMES = [T0 + dt.timedelta(seconds=s) for s in (-3600, -1, 0, 0.5, 1, 59, 3600)]
TIMES.append(T0.replace(microsecond=0))
ZONES = [
    dt.UTC,
    dt.timezone(dt.timedelta(hours=5, minutes=30)),
    dt.timezone(-dt.timedelta(hours=8)),
]

# The columns the fuzz filters and orders on, per table.
COLUMNS = {
    "flow": ["id", "name", "description", "version"],
    "task": ["id", "flow_id", "slug", "name", "max_retries", "mapped"],
    "flow_run": [
        *("id", "flow_id", "name", "state", "state_message", "idempotency_key"),
        *("version", "start_time", "scheduled_start_time"),
    ],
    "task_run": [
        *("id", "flow_run_id", "task_id", "name", "state", "state_message", "cache_key"),
        *("map_index", "run_count", "version", "start_time"),
    ],
}
RELATIONSHIPS = {
    "flow": ["tasks", "flow_runs"],
    "task": ["flow", "task_runs"],
    "flow_run": ["flow", "task_runs"],
    "task_run": ["flow_run", "task"],
}
OPERATORS = {
    Kind.UUID: ["_eq", "_neq", "_gt", "_lt", "_in", "_nin", "_is_null"],
    Kind.STRING: [
        *("_eq", "_neq", "_gt", "_gte", "_lt", "_lte", "_in", "_nin", "_is_null"),
        *("_like", "_like", "_ilike", "_ilike"),
    ],
    Kind.INT: ["_eq", "_neq", "_gt", "_gte", "_lt", "_lte", "_in", "_nin", "_is_null"],
    Kind.BOOLEAN: ["_eq", "_neq", "_in", "_nin", "_is_null"],
    Kind.TIMESTAMPTZ: ["_eq", "_neq", "_gt", "_gte", "_lt", "_lte", "_in", "_nin", "_is_null"],
}
DIRECTIONS = ["asc", "asc_nulls_first", "asc_nulls_last", "desc", "desc_nulls_first"]
DIRECTIONS.append("desc_nulls_last")


class Enum(str):
    """An enum value (an order_by direction): bare in a GraphQL literal."""


async def _seed(db: Database) -> None:
    pick = random.Random(20210512)

    def maybe(values: list[Any]) -> Any:
        return None if pick.random() < 0.3 else pick.choice(values)

    async with db.begin() as conn:
        for f, flow_name in enumerate(["hello", "Hello", "ünï%_\\"]):
            flow = await models.insert_flow(
                conn, name=flow_name, description=maybe(STRINGS), version=f - 1
            )
            tasks = [
                await models.insert_task(
                    conn,
                    flow_id=flow.id,
                    slug=f"{name}-1",
                    name=name,
                    max_retries=pick.randint(0, 2),
                    mapped=pick.random() < 0.5,
                )
                for name in pick.sample(STRINGS, 2)
            ]
            for r in range(3):
                flow_run = await models.insert_flow_run(
                    conn,
                    flow_id=flow.id,
                    name=pick.choice(STRINGS),
                    state=pick.choice(STRINGS),
                    state_message=maybe(STRINGS),
                    idempotency_key=None if r == 2 else f"{pick.choice(STRINGS)}#{r}",
                    version=pick.randint(-1, 3),
                    start_time=maybe(TIMES),
                    scheduled_start_time=pick.choice(TIMES),
                )
                for task in tasks:
                    for map_index in [-1, *range(pick.randint(0, 2))]:
                        await models.insert_task_run(
                            conn,
                            flow_run_id=flow_run.id,
                            task_id=task.id,
                            map_index=map_index,
                            name=pick.choice(STRINGS),
                            state=pick.choice(STRINGS),
                            state_message=maybe(STRINGS),
                            cache_key=maybe(STRINGS),
                            run_count=pick.randint(0, 3),
                            version=pick.randint(0, 2),
                            start_time=maybe(TIMES),
                        )


async def _stored(db: Database) -> dict[str, list[dict[str, Any]]]:
    async with db.connect() as conn:
        return {
            table: [row._asdict() for row in await models.list_rows(conn, table)]
            for table in COLUMNS
        }


@dataclass
class Fuzzed:
    model: Model
    # One kept-alive client per server (compiled reads, executor): a new connection and
    # client per request would cost more than the query.
    clients: list[httpx.Client]


@pytest.fixture(scope="module", params=BACKENDS)
def fuzzed(request: pytest.FixtureRequest, databases: DatabaseFactory) -> Iterator[Fuzzed]:
    url = databases.new(request.param)

    async def prepare() -> dict[str, list[dict[str, Any]]]:
        db = Database(url)
        try:
            await _seed(db)
            return await _stored(db)
        finally:
            await db.dispose()

    model = Model(run(prepare()))
    servers = [Server(url).start(), Server(url).start(compiled_reads=False)]
    clients = [httpx.Client(base_url=server.url, timeout=60) for server in servers]
    yield Fuzzed(model, clients)
    for client, server in zip(clients, servers, strict=True):
        client.close()
        server.stop()


# --- strategies -------------------------------------------------------------------------


def _values(model: Model, table: str, column: str) -> list[Any]:
    """Values to compare ``column`` with: the stored ones, and some that are not stored."""
    kind = TABLES[table].columns[column].kind
    stored = [row[column] for row in model.rows[table] if row[column] is not None]
    extras: dict[Kind, list[Any]] = {
        Kind.UUID: [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)],
        Kind.STRING: STRINGS,
        Kind.INT: [-1, 0, 1, 100],
        Kind.BOOLEAN: [True, False],
        Kind.TIMESTAMPTZ: TIMES,
    }
    return sorted(set(stored + extras[kind]), key=repr)


@st.composite
def patterns(draw: st.DrawFn, values: list[str]) -> str:
    """A LIKE pattern: a stored string cut into wildcards, escapes and changed case."""
    text = draw(st.sampled_from(values))
    pieces = []
    for char in text:
        roll = draw(st.integers(0, 9))
        if roll == 0:
            pieces.append("%")
        elif roll == 1:
            pieces.append("_")
        elif roll == 2 and char in "%_\\":
            pieces.append("\\" + char)
        elif roll == 3:
            pieces.append(char.swapcase())
        else:
            pieces.append(char)
    pattern = "".join(pieces)
    # Now and then one that ends in an unpaired escape, which the server must refuse.
    endings = ["", "", "", "%", "%", "_", "\\%", "\\\\", "\\"]
    return draw(st.sampled_from(["", "", "%"])) + pattern + draw(st.sampled_from(endings))


@st.composite
def comparisons(draw: st.DrawFn, model: Model, table: str, column: str) -> dict[str, Any]:
    kind = TABLES[table].columns[column].kind
    values = _values(model, table, column)
    count = draw(st.sampled_from([1, 1, 1, 2]))
    operators = draw(st.lists(st.sampled_from(OPERATORS[kind]), min_size=count, max_size=count))
    comparison: dict[str, Any] = {}
    for operator in operators:
        if operator == "_is_null":
            comparison[operator] = draw(st.booleans())
        elif operator in ("_in", "_nin"):
            comparison[operator] = draw(st.lists(st.sampled_from(values), max_size=4))
        elif operator in ("_like", "_ilike"):
            comparison[operator] = draw(patterns(values))
        else:
            comparison[operator] = draw(st.sampled_from(values))
    return comparison


@st.composite
def wheres(draw: st.DrawFn, model: Model, table: str, depth: int = 2) -> dict[str, Any]:
    where: dict[str, Any] = {}
    kinds = ["column", "column", "column"]
    if depth:
        kinds += ["_and", "_or", "_not", "relationship"]
    # Few conditions each: a conjunction of many random ones rarely leaves a row.
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 2, 3]))):
        kind = draw(st.sampled_from(kinds))
        if kind == "column":
            column = draw(st.sampled_from(COLUMNS[table]))
            where[column] = draw(comparisons(model, table, column))
        elif kind == "relationship":
            name = draw(st.sampled_from(RELATIONSHIPS[table]))
            target = TABLES[table].relationships[name].target
            where[name] = draw(wheres(model, target, depth - 1))
        elif kind == "_not":
            where["_not"] = draw(wheres(model, table, depth - 1))
        else:
            where[kind] = draw(st.lists(wheres(model, table, depth - 1), max_size=3))
    return where


@st.composite
def orders(draw: st.DrawFn, table: str) -> list[dict[str, Any]]:
    order: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 3))):
        direction = Enum(draw(st.sampled_from(DIRECTIONS)))
        related = [r for r in RELATIONSHIPS[table] if not TABLES[table].relationships[r].many]
        if related and draw(st.integers(0, 3)) == 0:
            name = draw(st.sampled_from(related))
            target = TABLES[table].relationships[name].target
            order.append({name: {draw(st.sampled_from(COLUMNS[target])): direction}})
        else:
            order.append({draw(st.sampled_from(COLUMNS[table])): direction})
    return order


# --- GraphQL ----------------------------------------------------------------------------


def _json(value: Any, zone: dt.tzinfo) -> Any:
    """``value`` as the API takes it: uuids and timestamps as text (in ``zone``)."""
    if isinstance(value, Mapping):
        return {key: _json(item, zone) for key, item in value.items()}
    if isinstance(value, list):
        return [_json(item, zone) for item in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(zone).isoformat()
    return value


def _literal(value: Any) -> str:
    """``value`` (already as ``_json`` made it) written as a GraphQL literal."""
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}: {_literal(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)  # strings, numbers, booleans


def _bad_pattern(where: Any) -> bool:
    """Whether some _like/_ilike pattern in ``where`` ends in an unpaired backslash."""
    if isinstance(where, list):
        return any(_bad_pattern(item) for item in where)
    if not isinstance(where, Mapping):
        return False
    for key, value in where.items():
        if key in ("_like", "_ilike"):
            if (len(value) - len(value.rstrip("\\"))) % 2:
                return True
        elif _bad_pattern(value):
            return True
    return False


def _refused(model: Model, query: Query) -> bool:
    """Whether the server refuses ``query`` for a pattern ending in an unpaired escape.

    A nested field's arguments are judged when it is resolved, as GraphQL executors do: not
    at all when there are no parent rows.
    """
    if _bad_pattern(query.where):
        return True
    return _bad_pattern(query.nested_where) and bool(model.select(query.table, query.where))


@dataclass
class Query:
    table: str
    where: dict[str, Any]
    order_by: list[dict[str, Any]] | None
    nested_where: dict[str, Any] | None = None
    nested_order_by: list[dict[str, Any]] | None = None


@st.composite
def queries(draw: st.DrawFn, model: Model) -> Query:
    table = draw(st.sampled_from(list(COLUMNS)))
    query = Query(
        table,
        draw(wheres(model, table)),
        draw(st.none() | orders(table)),
    )
    if table == "flow_run" and draw(st.booleans()):
        query.nested_where = draw(wheres(model, "task_run", depth=1))
        query.nested_order_by = draw(st.none() | orders("task_run"))
    return query


def _document(query: Query, zone: dt.tzinfo, inline: bool) -> tuple[str, dict[str, Any]]:
    """The GraphQL document of ``query`` and its variables."""
    table = query.table
    arguments: dict[str, tuple[str, Any, str]] = {"w": ("where", query.where, f"{table}_bool_exp")}
    if query.order_by is not None:
        arguments["o"] = ("order_by", query.order_by, f"[{table}_order_by!]")
    nested_arguments: dict[str, tuple[str, Any, str]] = {}
    if query.nested_where is not None:
        nested_arguments["nw"] = ("where", query.nested_where, "task_run_bool_exp")
        if query.nested_order_by is not None:
            nested_arguments["no"] = ("order_by", query.nested_order_by, "[task_run_order_by!]")
    variables: dict[str, Any] = {}
    declarations = []

    def render(args: dict[str, tuple[str, Any, str]]) -> str:
        rendered = []
        for variable, (name, value, graphql_type) in args.items():
            if inline:
                rendered.append(f"{name}: {_literal(_json(value, zone))}")
            else:
                rendered.append(f"{name}: ${variable}")
                declarations.append(f"${variable}: {graphql_type}")
                variables[variable] = _json(value, zone)
        return ", ".join(rendered)

    root = render(arguments)
    nested = ""
    if query.nested_where is not None:
        nested = f"task_runs({render(nested_arguments)}) {{ id }}"
    count_where = _literal(_json(query.where, zone)) if inline else "$w"
    header = f"query ({', '.join(declarations)})" if declarations else "query"
    document = (
        f"{header} {{ rows: {table}({root}) {{ id {nested} }}"
        f" count: {table}_aggregate(where: {count_where}) {{ aggregate {{ count }} }} }}"
    )
    return document, variables


def _expected(model: Model, query: Query) -> dict[str, Any]:
    rows = model.select(query.table, query.where, query.order_by)
    answer: list[dict[str, Any]] = []
    for row in rows:
        item: dict[str, Any] = {"id": str(row["id"])}
        if query.nested_where is not None:
            children = [r for r in model.rows["task_run"] if r["flow_run_id"] == row["id"]]
            selected = model.select(
                "task_run", query.nested_where, query.nested_order_by, among=children
            )
            item["task_runs"] = [{"id": str(r["id"])} for r in selected]
        answer.append(item)
    return {"rows": answer, "count": {"aggregate": {"count": len(rows)}}}


def _comparable(answer: dict[str, Any], query: Query) -> dict[str, Any]:
    """``answer`` with the lists no order was asked for sorted."""
    rows = [dict(row) for row in answer["rows"]]
    if query.nested_where is not None and query.nested_order_by is None:
        for row in rows:
            row["task_runs"] = sorted(row["task_runs"], key=lambda r: r["id"])
    if query.order_by is None:
        rows.sort(key=lambda row: row["id"])
    return {"rows": rows, "count": answer["count"]}


@settings(settings.get_profile("filter-fuzz"))
@given(data=st.data())
def test_filters_answer_as_the_model(fuzzed: Fuzzed, data: st.DataObject) -> None:
    query = data.draw(queries(fuzzed.model), label="query")
    zone = data.draw(st.sampled_from(ZONES), label="zone")
    inline = data.draw(st.booleans(), label="inline")
    document, variables = _document(query, zone, inline)
    for client in fuzzed.clients:
        response = client.post("/graphql", json={"query": document, "variables": variables})
        assert response.status_code == 200, response.text
        body = response.json()
        if _refused(fuzzed.model, query):
            assert body.get("data") is None, document
            assert "backslash" in body["errors"][0]["message"], body["errors"]
            continue
        assert "errors" not in body, (document, variables, body["errors"])
        expected = _expected(fuzzed.model, query)
        assert _comparable(body["data"], query) == _comparable(expected, query), (
            document,
            variables,
        )
