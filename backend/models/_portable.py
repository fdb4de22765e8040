"""SQL that means the same on PostgreSQL and SQLite but is spelled differently on each.

``in_values(column, values)``
    ``column`` is one of ``values``, a list bound as ONE parameter: a statement has one shape
    whatever the list's length, so it is built and cached once, and no length meets a limit
    on bound parameters (PostgreSQL's is 65,535). PostgreSQL: ``column = ANY(:values)`` over
    an array; SQLite: ``column IN (SELECT value FROM json_each(:values))`` over the list as
    JSON text of the values as they are stored (uuids as 32 hex digits, timestamps as text,
    booleans as 0/1). An empty list matches nothing, and ``NOT`` of it everything, nulls
    included, as ``IN ()`` would.

``code_points(text)``
    A string compared by code point: ``COLLATE "C"`` on PostgreSQL, whose database collation
    may be a language's (en-US puts "a" before "B"), and SQLite's default BINARY, which already
    is. Python's ``sorted`` agrees with both, and so does ``lower()`` under it: case folding
    of ASCII letters only, which is all SQLite's ``lower()`` does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeEngine


class ValueList(sa.TypeDecorator[Sequence[Any]]):
    """A list of ``item_type`` values as one parameter: an array on PostgreSQL, JSON text on
    SQLite. Each item is converted as a value of ``item_type`` would be."""

    impl = sa.Text
    cache_ok = True

    def __init__(self, item_type: TypeEngine[Any]) -> None:
        super().__init__()
        self.item_type = item_type

    def load_dialect_impl(self, dialect: sa.Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            # One dimension: a jsonb item that is itself a list must stay one item.
            return dialect.type_descriptor(postgresql.ARRAY(self.item_type, dimensions=1))
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: Sequence[Any] | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return list(value)  # the ARRAY type converts each item with item_type
        convert = self.item_type.dialect_impl(dialect).bind_processor(dialect)
        return json.dumps([convert(item) for item in value] if convert else list(value))


class _InValues(FunctionElement[bool]):
    inherit_cache = True
    type = sa.Boolean()
    # A condition, not a boolean value: SQLite must not render it as `(...) = 1`.
    _is_implicitly_boolean = True
    negated = False


class _NotInValues(_InValues):
    inherit_cache = True
    negated = True


def in_values(
    column: ColumnElement[Any], values: Sequence[Any] | BindParameter[Any], *, negate: bool = False
) -> ColumnElement[bool]:
    """``column IN values`` (``NOT IN`` with ``negate``), the values bound as one list.

    ``values`` is a list, or a bind parameter of type ``ValueList`` (a placeholder filled
    when the statement runs).
    """
    if not isinstance(values, BindParameter):
        values = sa.bindparam(None, list(values), type_=ValueList(column.type))
    construct = _NotInValues if negate else _InValues
    return construct(column, values)


@compiles(_InValues, "postgresql")
def _in_postgresql(element: _InValues, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = (compiler.process(clause, **kw) for clause in element.clauses.clauses)
    # <> ALL is NOT (= ANY) with the same nulls: unknown for a null column, true for '{}'.
    return f"({column} <> ALL ({values}))" if element.negated else f"({column} = ANY ({values}))"


@compiles(_InValues)
def _in_json_each(element: _InValues, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = (compiler.process(clause, **kw) for clause in element.clauses.clauses)
    operator = "NOT IN" if element.negated else "IN"
    return f"({column} {operator} (SELECT value FROM json_each({values})))"


class code_points(FunctionElement[Any]):  # noqa: N801 (a SQL function's name)
    """``text`` compared and ordered by code point on every database."""

    inherit_cache = True

    def __init__(self, text: ColumnElement[Any]) -> None:
        super().__init__(text)
        self.type = text.type


@compiles(code_points, "postgresql")
def _code_points_postgresql(element: code_points, compiler: SQLCompiler, **kw: Any) -> str:
    return f'({compiler.process(element.clauses.clauses[0], **kw)} COLLATE "C")'


@compiles(code_points)
def _code_points_binary(element: code_points, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses.clauses[0], **kw)
