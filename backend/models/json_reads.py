"""A whole read query as ONE SQL statement whose single value is the answer's JSON text.

The API's compiled read path (``backend.api.compiled``) turns a GraphQL read query into a
tree of ``read_tree`` nodes; ``read_json`` compiles the tree into one SELECT and returns the text
the database built. No row reaches Python: for 10,000 task runs the cost is the database's.

How each node becomes SQL (PostgreSQL spelling; SQLite uses json_object/json_group_array)::

    Rows   coalesce(json_agg(json_build_object(...) ORDER BY ...), '[]')
           FROM (SELECT <columns used> FROM t WHERE <filter> [AND t.remote = parent.local]
                 ORDER BY ... LIMIT ... OFFSET ...) AS t
    Row    a to-one relationship: LEFT JOIN target ON target.id = source.local, then
           CASE WHEN target.id IS NULL THEN NULL ELSE json_build_object(...) END;
           by primary key: a scalar subquery, NULL when there is no such row
    Count  (SELECT count(*) FROM t WHERE <filter>)

A list relationship is a correlated subquery per parent row, served by the foreign key's
index, so nesting costs no extra statement. A list without ``limit`` gets the server's
default rows as its LIMIT (``Rows.cap``), after its ORDER BY when it has one. Filters,
orderings and paging go through the executor path's own functions (``_filters``,
``reads._ordering``), so both paths pick the same rows in the same order;
``_Postgres``/``_Sqlite`` format every value exactly as the GraphQL executor does (dashed
uuids, ``datetime.isoformat()`` timestamps, JSON booleans).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause

from backend.models._filters import bind, where_clause
from backend.models.catalog import TABLES, Kind, Relationship, TableInfo
from backend.models.read_tree import (
    Count,
    Fields,
    Obj,
    Parameters,
    Row,
    Rows,
    Text,
    Unsupported,
    Value,
)
from backend.models.reads import _ordering

# PostgreSQL functions take at most 100 arguments: 50 key/value pairs per JSON object.
MAX_FIELDS = 50
# Statements kept per query shape; clients send few shapes, each with many values.
CACHE_SIZE = 512

_statements: dict[tuple[str, str], sa.Select[Any]] = {}


async def read_json(conn: AsyncConnection, root: Obj) -> str:
    """The JSON text of ``root``, built by the database in one statement.

    The statement is built once per shape (the tree with its values taken out as named
    parameters) and reused: the same query with another id costs no SQLAlchemy building.

    Raises:
        InputError: a filter, ordering or page is invalid (as the executor would say).
        Unsupported: the tree cannot be one statement (an object of over 50 fields; on
            SQLite, nesting deeper than its parser takes, from about five levels).
    """
    if conn.dialect.name == "sqlite":
        root = await _without_needless_caps(conn, root)
    parameters = Parameters()
    shape = parameters.node(root)
    key = (conn.dialect.name, repr(shape))
    statement = _statements.get(key)
    if statement is None:
        statement = _statement(shape, conn.dialect.name)
        if len(_statements) >= CACHE_SIZE:
            del _statements[next(iter(_statements))]
        _statements[key] = statement
    try:
        return str((await conn.execute(statement, parameters.values)).scalar_one())
    except sa.exc.OperationalError as error:
        # SQLite's parser has a fixed stack (YYSTACKDEPTH); the statement never ran.
        if "parser stack overflow" in str(error.orig):
            raise Unsupported("nesting deeper than SQLite's parser takes") from None
        raise


# SQLite: (database, table) -> (monotonic time it was read, the table's largest rowid).
_row_bounds: dict[tuple[str, str], tuple[float, int]] = {}
_ROW_BOUND_SECONDS = 1.0


async def _without_needless_caps(conn: AsyncConnection, root: Obj) -> Obj:
    """``root`` without the caps no list of it can reach: those on tables that hold no more
    rows than the cap (their largest rowid says so, and costs SQLite an index probe).

    A LIMIT keeps SQLite from flattening the list's subquery into the aggregate above it,
    which makes 10,000 task runs some 20 % slower to read; a cap only matters where a table
    is larger than it. The bound is kept for a second, so a table that grows past the cap
    within that second can answer it a few rows over, once.
    """
    capped = {node.table for node in _nodes(root) if isinstance(node, Rows) and node.cap}
    if not capped:
        return root
    now = time.monotonic()
    database = str(conn.engine.url)
    stale = [
        t for t in capped if now - _row_bounds.get((database, t), (-1e9, 0))[0] > _ROW_BOUND_SECONDS
    ]
    if stale:
        bounds = sa.select(
            *(
                sa.select(sa.func.max(sa.column("rowid")))
                .select_from(sa.table(t))
                .scalar_subquery()
                for t in stale
            )
        )
        for table, bound in zip(stale, (await conn.execute(bounds)).one(), strict=True):
            _row_bounds[(database, table)] = (now, int(bound or 0))
    small = {t for t in capped if _row_bounds[(database, t)][1] <= _smallest_cap(root, t)}
    return _uncapped(root, small) if small else root


def _nodes(node: Any) -> Any:
    yield node
    for _, child in getattr(node, "fields", ()):
        yield from _nodes(child)


def _smallest_cap(root: Obj, table: str) -> int:
    return min(n.cap for n in _nodes(root) if isinstance(n, Rows) and n.table == table and n.cap)


def _uncapped(node: Any, tables: set[str]) -> Any:
    fields = getattr(node, "fields", None)
    if fields is None:
        return node
    changes: dict[str, Any] = {"fields": tuple((k, _uncapped(c, tables)) for k, c in fields)}
    if isinstance(node, Rows) and node.table in tables:
        changes["cap"] = None
    return dataclasses.replace(node, **changes)


def _statement(root: Obj, dialect: str) -> sa.Select[Any]:
    """The SELECT that builds ``root``'s JSON on ``dialect`` (``postgresql`` or ``sqlite``)."""
    json = _Postgres() if dialect == "postgresql" else _Sqlite()
    return sa.select(json.text(_Compiler(json).object(root.fields, None, None, [])))


class _Json:
    """How one database builds JSON; the methods are what differs between the two."""

    # Whether the aggregate can take its own ORDER BY. SQLite's json_group_array cannot (before
    # 3.44), so there the ordered subquery feeds it rows in order instead.
    aggregate_order = True

    def object(self, pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]:
        raise NotImplementedError

    def array(self, item: ColumnElement[Any], order: list[Any]) -> ColumnElement[Any]:
        raise NotImplementedError

    def value(self, column: ColumnElement[Any], kind: Kind) -> ColumnElement[Any]:
        raise NotImplementedError

    def json_at(
        self, column: ColumnElement[Any], path: tuple[str | int, ...]
    ) -> ColumnElement[Any]:
        """The part of a jsonb column at ``path``, as JSON (NULL where there is none)."""
        raise NotImplementedError

    def nested(self, subquery: ColumnElement[Any]) -> ColumnElement[Any]:
        return subquery

    def text(self, document: ColumnElement[Any]) -> ColumnElement[Any]:
        return document


def _string(text: str) -> ColumnElement[Any]:
    """A SQL string literal, inlined (keys and formats: identifiers, never user data)."""
    return sa.literal_column("'" + text.replace("'", "''") + "'")


def _int(number: int) -> ColumnElement[Any]:
    return sa.literal_column(str(int(number)))


def _pairs(pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> list[ColumnElement[Any]]:
    return [part for key, value in pairs for part in (_string(key), value)]


class _Postgres(_Json):
    def object(self, pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]:
        return sa.func.json_build_object(*_pairs(pairs))

    def array(self, item: ColumnElement[Any], order: list[Any]) -> ColumnElement[Any]:
        aggregated = sa.func.json_agg(aggregate_order_by(item, *order) if order else item)
        return sa.func.coalesce(aggregated, sa.literal_column("'[]'::json"))

    def value(self, column: ColumnElement[Any], kind: Kind) -> ColumnElement[Any]:
        if kind is not Kind.TIMESTAMPTZ:
            return column  # uuid, text, numbers, booleans and jsonb are already JSON-ready
        # datetime.isoformat(): microseconds only when there are any, then the UTC offset.
        utc = sa.type_coerce(column, sa.DateTime).op("AT TIME ZONE")(_string("UTC"))
        whole = sa.func.date_trunc(_string("second"), column) == column
        return sa.case(
            (whole, sa.func.to_char(utc, _string('YYYY-MM-DD"T"HH24:MI:SS"+00:00"'))),
            else_=sa.func.to_char(utc, _string('YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')),
        )

    def json_at(
        self, column: ColumnElement[Any], path: tuple[str | int, ...]
    ) -> ColumnElement[Any]:
        # #> takes a text[] of keys and indexes; steps are identifiers and digits only.
        steps = ",".join(str(step) for step in path)
        return column.op("#>")(sa.literal_column(f"'{{{steps}}}'::text[]"))

    def text(self, document: ColumnElement[Any]) -> ColumnElement[Any]:
        # As text: psycopg would otherwise parse the json into Python objects.
        return sa.cast(document, sa.Text)


class _Sqlite(_Json):
    aggregate_order = False

    def object(self, pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]:
        return sa.func.json_object(*_pairs(pairs))

    def array(self, item: ColumnElement[Any], order: list[Any]) -> ColumnElement[Any]:
        return sa.func.json_group_array(item)  # '[]' over no rows

    def value(self, column: ColumnElement[Any], kind: Kind) -> ColumnElement[Any]:
        raw = sa.type_coerce(column, sa.Text)  # the stored text, not SQLAlchemy's conversion
        if kind is Kind.UUID:  # stored as 32 hex digits (SQLAlchemy's Uuid on SQLite)
            parts = [sa.func.substr(raw, _int(start), _int(size)) for start, size in _UUID_PARTS]
            return _concat(parts[0], *(piece for part in parts[1:] for piece in ("-", part)))
        if kind is Kind.TIMESTAMPTZ:  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff', naive UTC
            fraction = sa.func.substr(raw, 20, 7)
            return _concat(
                sa.func.substr(raw, 1, 10),
                "T",
                sa.func.substr(raw, 12, 8),
                sa.case((fraction == _string(".000000"), _string("")), else_=fraction),
                "+00:00",
            )
        if kind is Kind.BOOLEAN:  # stored as 0/1
            return sa.case(
                (column.is_(None), sa.null()),
                (sa.type_coerce(column, sa.Integer) != 0, sa.func.json(_string("true"))),
                else_=sa.func.json(_string("false")),
            )
        if kind is Kind.JSONB:  # stored as JSON text: embed it as JSON, not as a string
            return sa.func.json(raw)
        return column

    def json_at(
        self, column: ColumnElement[Any], path: tuple[str | int, ...]
    ) -> ColumnElement[Any]:
        # -> gives the JSON text at the path (true, not 1); json() embeds it as JSON.
        steps = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)
        raw = sa.type_coerce(column, sa.Text)
        return sa.func.json(raw.op("->")(_string("$" + steps)))

    def nested(self, subquery: ColumnElement[Any]) -> ColumnElement[Any]:
        # json() marks a subquery's text as JSON, so json_object embeds it rather than quoting
        # it (whether the JSON subtype survives a subquery differs between SQLite versions).
        return sa.func.json(subquery)


_UUID_PARTS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))


def _concat(*parts: ColumnElement[Any] | str) -> ColumnElement[Any]:
    pieces = [_string(part) if isinstance(part, str) else part for part in parts]
    result = pieces[0]
    for piece in pieces[1:]:
        result = result.op("||")(piece)
    return result


class _Compiler:
    def __init__(self, json: _Json) -> None:
        self.json = json

    def object(
        self,
        fields: Fields,
        source: FromClause | None,
        info: TableInfo | None,
        joins: list[tuple[FromClause, ColumnElement[bool]]],
    ) -> ColumnElement[Any]:
        """The JSON object of ``fields``, over the row of ``source`` (a ``info`` table) if any.

        To-one relationships add their LEFT JOIN to ``joins``, for the caller's FROM.
        """
        if len(fields) > MAX_FIELDS:
            raise Unsupported(f"an object of {len(fields)} fields (at most {MAX_FIELDS})")
        pairs = []
        for key, node in fields:
            if isinstance(node, Value):
                assert source is not None and info is not None
                column = source.c[node.column]
                if node.path is not None:
                    value = self.json.json_at(column, node.path)
                else:
                    value = self.json.value(column, info.columns[node.column].kind)
            elif isinstance(node, Text):
                value = _string(node.text)
            elif isinstance(node, Obj):
                value = self.object(node.fields, source, info, joins)
            elif isinstance(node, Rows):
                value = self.json.nested(self.rows(node, source))
            elif isinstance(node, Count):
                value = self.count(node)
            elif node.via is not None:
                assert source is not None
                value = self.joined(node, node.via, source, joins)
            else:
                value = self.json.nested(self.by_pk(node))
            pairs.append((key, value))
        return self.json.object(pairs)

    def rows(self, node: Rows, parent: FromClause | None) -> ColumnElement[Any]:
        info = TABLES[node.table]
        paged = node.limit is not None or node.offset is not None
        table = info.table.alias()
        # Only the columns used above the subquery: a page is sorted with its rows' width.
        columns = [table.c[name] for name in info.columns if name in _used_columns(info, node)]
        inner = sa.select(*columns).where(where_clause(info, table, node.where or {}))
        if node.via is not None:
            assert parent is not None
            inner = inner.where(table.c[node.via.remote] == parent.c[node.via.local])
            inner = inner.correlate(parent)
        ordering = _ordering(info, table, node.order_by, paged)
        # A cap keeps the first rows of the ordering, when there is one, as a limit would.
        capped = node.limit is None and node.cap is not None
        if ordering and (paged or capped or not self.json.aggregate_order):
            inner = inner.order_by(*ordering)
        limit, offset = (
            None if value is None else bind(value, sa.Integer())
            for value in (node.limit, node.offset)
        )
        if node.limit is None and node.cap is not None:
            limit = _int(node.cap)  # the server's setting, not the client's: inlined
        rows = inner.limit(limit).offset(offset).subquery()
        joins: list[tuple[FromClause, ColumnElement[bool]]] = []
        item = self.object(node.fields, rows, info, joins)
        order = _ordering(info, rows, node.order_by, paged) if self.json.aggregate_order else []
        return (
            sa.select(self.json.array(item, order))
            .select_from(_joined(rows, joins))
            .scalar_subquery()
        )

    def joined(
        self,
        node: Row,
        via: Relationship,
        source: FromClause,
        joins: list[tuple[FromClause, ColumnElement[bool]]],
    ) -> ColumnElement[Any]:
        info = TABLES[node.table]
        target = info.table.alias()
        joins.append((target, target.c[via.remote] == source.c[via.local]))
        item = self.object(node.fields, target, info, joins)
        return sa.case((target.c.id.is_(None), sa.null()), else_=item)

    def by_pk(self, node: Row) -> ColumnElement[Any]:
        info = TABLES[node.table]
        table = info.table.alias()
        joins: list[tuple[FromClause, ColumnElement[bool]]] = []
        item = self.object(node.fields, table, info, joins)
        return (
            sa.select(item)
            .select_from(_joined(table, joins))
            .where(table.c.id == bind(node.id, table.c.id.type))
            .scalar_subquery()
        )

    def count(self, node: Count) -> ColumnElement[Any]:
        info = TABLES[node.table]
        table = info.table.alias()
        return (
            sa.select(sa.func.count())
            .select_from(table)
            .where(where_clause(info, table, node.where or {}))
            .scalar_subquery()
        )


def _used_columns(info: TableInfo, node: Rows) -> set[str]:
    """The columns of ``node``'s rows that its fields and ordering read."""
    used = {"id"}  # the tie-break of every ordering
    for _, field in node.fields:
        if isinstance(field, Value):
            used.add(field.column)
        elif isinstance(field, Rows | Row) and field.via is not None:
            used.add(field.via.local)
    for term in node.order_by or []:
        for key in term:
            relationship = info.relationships.get(key)
            used.add(relationship.local if relationship else key)
    return used


def _joined(source: FromClause, joins: list[tuple[FromClause, ColumnElement[bool]]]) -> FromClause:
    for target, condition in joins:
        source = source.outerjoin(target, condition)
    return source


__all__ = ["read_json"]
