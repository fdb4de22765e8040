"""The compiled read path answers exactly as Strawberry's executor does (issue 6).

Hypothesis writes read queries over the whole catalog: root lists, ``_by_pk`` and
``_aggregate`` fields, nested relationships with where/order_by/limit/offset, filters built
from the values actually stored, aliases, inline and named fragments, ``@include``/``@skip``,
and arguments passed as literals or as variables. Each query runs through both paths on the
same database, PostgreSQL and SQLite, and the answers must be the same JSON, key order
included. A list without order_by or paging has no defined order on either path, so its
response key starts with ``u_`` and it is compared as a multiset.

The compiled side is called without its fallback, so a query it cannot build fails the test
instead of being quietly answered by the executor.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend import models
from backend.api.compiled import CompiledReads
from backend.api.context import Context
from backend.api.schema import schema
from backend.database.engine import Database
from backend.errors import InputError
from backend.models import TABLES, Kind, json_reads
from tests.conftest import BACKENDS, DatabaseFactory
from tests.dataset import seed

COLUMNS = {name: list(info.columns) for name, info in TABLES.items()}


class Direction(str):
    """An order_by direction: an enum value, written bare in a GraphQL literal."""


async def _add_odd_values(db: Database) -> None:
    """Values whose formatting could differ between the paths."""
    whole_second = dt.datetime(2022, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    async with db.begin() as conn:
        flow = await models.insert_flow(
            conn,
            name='odd "quoted" \\ név\nline',
            description="ünïcode ✓ 'single'",
            created=whole_second,
            updated=whole_second,
        )
        task = await models.insert_task(
            conn,
            flow_id=flow.id,
            slug="odd-1",
            name="odd",
            mapped=True,
            retry_delay_seconds=0.0,
            tags=["a", {"b": [1, 2.5, None, True]}],
        )
        run = await models.insert_flow_run(
            conn,
            flow_id=flow.id,
            name="odd",
            parameters={"nested": {"list": [1, "two", {"three": 3.25}]}, "empty": {}},
            context={"x": None},
            start_time=whole_second,
            end_time=whole_second + dt.timedelta(microseconds=1),
        )
        task_run = await models.insert_task_run(
            conn, flow_run_id=run.id, task_id=task.id, name="odd", map_index=0
        )
        await models.insert_task_run_state(
            conn,
            task_run_id=task_run.id,
            state="Completed",
            type="COMPLETED",
            version=1,
            result={"location": "/tmp/x.pickle", "serializer": "pickle"},
            details={"cached": False},
            timestamp=whole_second,
        )


@dataclass
class Fixture:
    db: Database
    loop: asyncio.AbstractEventLoop
    # Every stored value of every column, as the API answers it (JSON values).
    values: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)


@pytest.fixture(scope="module", params=BACKENDS)
def stored(request: pytest.FixtureRequest, databases: DatabaseFactory) -> Iterator[Fixture]:
    loop = asyncio.new_event_loop()
    db = Database(databases.new(request.param))
    fixture = Fixture(db, loop)
    try:
        fixture.run(seed(db))
        fixture.run(_add_odd_values(db))
        for table, columns in COLUMNS.items():
            rows = fixture.run(_executor(db, f"{{ {table} {{ {' '.join(columns)} }} }}", {}))
            fixture.values[table] = {c: [row[c] for row in rows[table]] for c in columns}
        yield fixture
    finally:
        loop.run_until_complete(db.dispose())
        loop.close()


async def _executor(db: Database, query: str, variables: dict[str, Any]) -> Any:
    result = await schema.execute(query, variable_values=variables, context_value=Context(db=db))
    if result.errors:
        raise AssertionError(f"executor: {result.errors} for {query}")
    return result.data


READS = CompiledReads(schema._schema)


async def _compiled(db: Database, query: str, variables: dict[str, Any]) -> Any:
    tree = READS.tree(query, variables)
    assert tree is not None, f"not compiled: {query}"
    async with db.connect() as conn:
        return json.loads(await json_reads.read_json(conn, tree))


# -- writing queries ------------------------------------------------------------------------


def literal(value: Any) -> str:
    """``value`` as a GraphQL literal."""
    if isinstance(value, Direction):
        return str(value)
    if isinstance(value, bool) or value is None or isinstance(value, int | float | str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    return "{" + ", ".join(f"{key}: {literal(item)}" for key, item in value.items()) + "}"


class Query:
    """One document being written: its variables and fragments."""

    def __init__(self, draw: Any) -> None:
        self.draw = draw
        self.definitions: list[str] = []
        self.variables: dict[str, Any] = {}
        self.fragments: list[str] = []

    def argument(self, name: str, value: Any, graphql_type: str) -> str:
        if self.draw(st.integers(0, 3)) == 0:
            variable = f"v{len(self.definitions)}"
            self.definitions.append(f"${variable}: {graphql_type}")
            self.variables[variable] = value
            return f"{name}: ${variable}"
        return f"{name}: {literal(value)}"

    def directive(self) -> tuple[str, bool]:
        """A random @include/@skip (or none), and whether the field stays."""
        choice = self.draw(st.integers(0, 5))
        if choice > 1:
            return "", True
        condition = self.draw(st.booleans())
        name = "include" if choice == 0 else "skip"
        if self.draw(st.booleans()):
            variable = f"v{len(self.definitions)}"
            self.definitions.append(f"${variable}: Boolean!")
            self.variables[variable] = condition
            argument = f"${variable}"
        else:
            argument = json.dumps(condition)
        return f" @{name}(if: {argument})", condition == (name == "include")

    def text(self, body: str) -> str:
        head = f"query Q({', '.join(self.definitions)})" if self.definitions else "query Q"
        return "\n".join([f"{head} {{ {body} }}", *self.fragments])


def comparison(draw: Any, values: dict[str, list[Any]], table: str) -> dict[str, Any]:
    column = draw(st.sampled_from(COLUMNS[table]))
    kind = TABLES[table].columns[column].kind
    present = [v for v in values[table][column] if v is not None]
    operators = ["_eq", "_neq", "_in", "_nin", "_is_null"]
    if kind.ordered:
        operators += ["_gt", "_gte", "_lt", "_lte"]
    if kind is Kind.STRING:
        operators += ["_like", "_ilike"]
    operator = draw(st.sampled_from(operators))
    if operator == "_is_null":
        return {column: {operator: draw(st.booleans())}}
    if operator in ("_like", "_ilike"):
        pattern = draw(st.sampled_from(["%", "%e%", "H%", "%-1", "_a%", "%LL%"]))
        return {column: {operator: pattern}}
    if not present:
        return {column: {"_is_null": True}}
    if operator in ("_in", "_nin"):
        return {column: {operator: draw(st.lists(st.sampled_from(present), max_size=3))}}
    return {column: {operator: draw(st.sampled_from(present))}}


def where(draw: Any, values: dict[str, list[Any]], table: str, depth: int = 0) -> dict[str, Any]:
    choice = draw(st.integers(0, 9 if depth < 2 else 4))
    if choice <= 4:
        return comparison(draw, values, table)
    if choice == 5:
        return {}
    if choice == 6:
        return {"_not": where(draw, values, table, depth + 1)}
    if choice == 7:
        key = draw(st.sampled_from(["_and", "_or"]))
        return {
            key: [where(draw, values, table, depth + 1) for _ in range(draw(st.integers(0, 2)))]
        }
    relationship = draw(st.sampled_from(sorted(TABLES[table].relationships.values(), key=str)))
    return {relationship.name: where(draw, values, relationship.target, depth + 1)}


# Into the stored JSON (see _add_odd_values and tests.dataset): objects, lists, strings,
# numbers, booleans, JSON null, and paths that lead nowhere.
JSON_PATHS = [
    "result",
    "result.location",
    "$.nested.list[2].three",
    "nested.list[1]",
    "$[1].b[3]",
    "[1].b",
    "[0]",
    "x",
    "name",
    "type",
    "missing.deeper",
    "[5]",
]

DIRECTIONS = [
    Direction(d)
    for d in (
        "asc",
        "desc",
        "asc_nulls_first",
        "asc_nulls_last",
        "desc_nulls_first",
        "desc_nulls_last",
    )
]


def order_by(draw: Any, table: str) -> list[dict[str, Any]]:
    terms = []
    for _ in range(draw(st.integers(1, 2))):
        one = [r for r in TABLES[table].relationships.values() if not r.many]
        if one and draw(st.integers(0, 4)) == 0:
            relationship = draw(st.sampled_from(one))
            column = draw(st.sampled_from(COLUMNS[relationship.target]))
            terms.append({relationship.name: {column: draw(st.sampled_from(DIRECTIONS))}})
        else:
            terms.append({draw(st.sampled_from(COLUMNS[table])): draw(st.sampled_from(DIRECTIONS))})
    return terms


def list_arguments(query: Query, values: dict[str, list[Any]], table: str) -> tuple[str, bool]:
    """Arguments of a list field, and whether they define its order."""
    draw = query.draw
    arguments = []
    ordered = False
    if draw(st.booleans()):
        arguments.append(query.argument("where", where(draw, values, table), f"{table}_bool_exp"))
    if draw(st.booleans()):
        ordered = True
        value = order_by(draw, table)
        arguments.append(query.argument("order_by", value, f"[{table}_order_by!]"))
    for name in ("limit", "offset"):
        if draw(st.integers(0, 3)) == 0:
            ordered = True  # a page is ordered by the primary key at least
            arguments.append(query.argument(name, draw(st.integers(0, 4)), "Int"))
    return (f"({', '.join(arguments)})" if arguments else ""), ordered


def selection(query: Query, values: dict[str, Any], table: str, depth: int) -> str:
    draw = query.draw
    info = TABLES[table]
    columns = draw(st.lists(st.sampled_from(COLUMNS[table]), min_size=1, max_size=6, unique=True))
    parts = []
    for column in columns:
        alias = f"c_{column}: " if draw(st.integers(0, 4)) == 0 else ""
        directive, _ = query.directive()
        parts.append(f"{alias}{column}{directive}")
        if info.columns[column].kind is Kind.JSONB and draw(st.booleans()):
            path = query.argument("path", draw(st.sampled_from(JSON_PATHS)), "String")
            parts.append(f"p_{column}: {column}({path})")
    if draw(st.integers(0, 3)) == 0:
        parts.append("__typename")
    if depth < 3:
        names = sorted(info.relationships)
        for name in draw(st.lists(st.sampled_from(names), max_size=2, unique=True)):
            relationship = info.relationships[name]
            inner = selection(query, values, relationship.target, depth + 1)
            directive, _ = query.directive()
            if relationship.many:
                arguments, ordered = list_arguments(query, values, relationship.target)
                key = f"{name}: " if ordered else f"u_{name}: "
                parts.append(f"{key}{name}{arguments}{directive} {{ {inner} }}")
            else:
                parts.append(f"{name}{directive} {{ {inner} }}")
    # Fragments: move some of the fields into an inline or a named fragment, or repeat one.
    style = draw(st.integers(0, 5))
    if style == 0:
        parts = [f"... on {table} {{ {' '.join(parts[:2])} }}", *parts[2:]]
    elif style == 1:
        name = f"F{len(query.fragments)}"
        query.fragments.append(f"fragment {name} on {table} {{ {' '.join(parts[-2:])} }}")
        parts = [*parts[:-2], f"...{name}"]
    elif style == 2:
        parts.append(f"... on {table} {{ {columns[0]} }}")  # merged with the same field
    return " ".join(parts)


@st.composite
def queries(draw: Any, values: dict[str, dict[str, list[Any]]]) -> tuple[str, dict[str, Any]]:
    query = Query(draw)
    roots = []
    for index in range(draw(st.integers(1, 3))):
        table = draw(st.sampled_from(sorted(TABLES)))
        kind = draw(st.sampled_from(["list", "list", "by_pk", "aggregate"]))
        directive, _ = query.directive()
        if kind == "by_pk":
            ids = values[table]["id"] + ["00000000-0000-4000-8000-000000000000"]
            argument = query.argument("id", draw(st.sampled_from(ids)), "uuid!")
            inner = selection(query, values, table, 1)
            roots.append(f"r{index}: {table}_by_pk({argument}){directive} {{ {inner} }}")
        elif kind == "aggregate":
            argument = ""
            if draw(st.booleans()):
                w = where(draw, values, table)
                argument = f"({query.argument('where', w, f'{table}_bool_exp')})"
            typename = " __typename" if draw(st.booleans()) else ""
            roots.append(
                f"r{index}: {table}_aggregate{argument}{directive}"
                f" {{ aggregate {{ count{typename} }}{typename} }}"
            )
        else:
            arguments, ordered = list_arguments(query, values, table)
            key = f"r{index}" if ordered else f"u_r{index}"
            inner = selection(query, values, table, 1)
            roots.append(f"{key}: {table}{arguments}{directive} {{ {inner} }}")
    if draw(st.integers(0, 5)) == 0:
        roots.append("__typename")
    return query.text(" ".join(roots)), query.variables


def canonical(value: Any, unordered: bool = False) -> Any:
    """Key order kept; lists under a ``u_`` key sorted, as their order is undefined."""
    if isinstance(value, dict):
        return [(key, canonical(item, key.startswith("u_"))) for key, item in value.items()]
    if isinstance(value, list):
        items = [canonical(item) for item in value]
        return (
            sorted(items, key=lambda item: json.dumps(item, sort_keys=True)) if unordered else items
        )
    return value


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_compiled_path_answers_as_the_executor(stored: Fixture, data: st.DataObject) -> None:
    query, variables = data.draw(queries(stored.values))
    try:
        expected = stored.run(_executor(stored.db, query, variables))
    except AssertionError:
        # The executor refuses it (a null in a filter, say): the compiled path must step aside.
        with pytest.raises(InputError):
            stored.run(_compiled(stored.db, query, variables))
        return
    answer = stored.run(_compiled(stored.db, query, variables))
    assert canonical(answer) == canonical(json.loads(json.dumps(expected))), query
