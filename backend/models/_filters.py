"""Compile Hasura-style filters and orderings into SQL.

Input is plain data, already typed by the API layer::

    {"_and": [...], "_or": [...], "_not": {...},
     "<column>": {"_eq": value, "_in": [...], ...},
     "<relationship>": {<filter on the related table>}}

A relationship filter becomes ``EXISTS (SELECT 1 FROM target WHERE target.remote =
source.local AND <filter>)``: for a list relationship that means "some related row matches",
as in Hasura, and it never multiplies the outer rows the way a join would. Every nesting level
gets its own alias, so ``task_run -> task -> task_runs`` correlates correctly.

Empty forms follow the algebra: ``{}`` and ``_and: []`` match everything, ``_or: []`` and
``_in: []`` match nothing, ``_nin: []`` matches everything (rows with a null too). A null
anywhere inside a filter is an error rather than "no condition": silently dropping a condition
returns rows the caller meant to exclude.

Nulls follow SQL's three-valued logic, as in Hasura: a comparison with a null column is
unknown, and so is its ``_not``, so neither matches the row. ``_is_null`` is the comparison
for nulls; an empty ``_in`` is false and an empty ``_nin`` true even for them.

Strings mean the same on PostgreSQL and SQLite, whatever the database's collation:

- ``_in``/``_nin`` bind their list as one parameter (``_portable.in_values``): one statement
  shape for any length, and no limit on it.
- ``_gt``/``_gte``/``_lt``/``_lte`` and ``order_by`` compare strings by code point
  (``_portable.code_points``), as SQLite and Python do; not by a language's collation.
- ``_like`` is case-sensitive (SQLite's connections set ``case_sensitive_like``); ``%`` is any
  run of characters, ``_`` one character, and ``\\`` makes the next one literal (``ESCAPE
  '\\'`` on both: PostgreSQL's default, SQLite's none). A pattern ending in an unpaired ``\\``
  is refused, as PostgreSQL refuses it (SQLite would match nothing).
- ``_ilike`` folds ASCII letters only: ``A``-``Z`` match ``a``-``z``, and every other
  character only itself (``É`` is not ``é``). That is all SQLite's ``lower()`` can do, so
  PostgreSQL's ILIKE runs under ``COLLATE "C"``, which folds the same letters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause

from backend.errors import InputError
from backend.models._portable import ValueList, code_points, in_values
from backend.models.catalog import TABLES, Column, Kind, Relationship, TableInfo

Where = Mapping[str, Any]
OrderBy = Sequence[Mapping[str, Any]]

ESCAPE = "\\"

_COMPARISONS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "_eq": lambda c, v: c == v,
    "_neq": lambda c, v: c != v,
    "_gt": lambda c, v: c > v,
    "_gte": lambda c, v: c >= v,
    "_lt": lambda c, v: c < v,
    "_lte": lambda c, v: c <= v,
    "_in": lambda c, v: in_values(c, v),
    "_nin": lambda c, v: in_values(c, v, negate=True),
    "_is_null": lambda c, v: c.is_(None) if v else c.is_not(None),
    "_like": lambda c, v: c.like(v, escape=ESCAPE),
    # SQLite: lower(c) LIKE lower(v); PostgreSQL: ILIKE, folding as lower() does under "C".
    "_ilike": lambda c, v: code_points(c).ilike(v, escape=ESCAPE),
}
_RANGES = ("_gt", "_gte", "_lt", "_lte")
_LISTS = ("_in", "_nin")
_PATTERNS = ("_like", "_ilike")

_DIRECTIONS = {
    "asc": (sa.asc, sa.nulls_last),
    "asc_nulls_first": (sa.asc, sa.nulls_first),
    "asc_nulls_last": (sa.asc, sa.nulls_last),
    "desc": (sa.desc, sa.nulls_first),
    "desc_nulls_first": (sa.desc, sa.nulls_first),
    "desc_nulls_last": (sa.desc, sa.nulls_last),
}


def where_clause(info: TableInfo, source: FromClause, where: Where) -> ColumnElement[bool]:
    """The SQL condition for ``where`` on ``source`` (the table ``info`` or an alias of it)."""
    clauses: list[ColumnElement[bool]] = []
    for key, value in where.items():
        if value is None:
            raise InputError(
                f"{info.name}_bool_exp.{key} is null; leave the field out to not filter on it"
                " (use _is_null to match missing values)."
            )
        if key == "_and":
            clauses.append(sa.and_(sa.true(), *(where_clause(info, source, w) for w in value)))
        elif key == "_or":
            clauses.append(sa.or_(sa.false(), *(where_clause(info, source, w) for w in value)))
        elif key == "_not":
            clauses.append(sa.not_(where_clause(info, source, value)))
        elif key in info.columns:
            clauses.extend(_compare(info.columns[key], source.c[key], value, info.name))
        elif key in info.relationships:
            clauses.append(_exists(info.relationships[key], source, value))
        else:
            raise InputError(
                f"{key!r} is not a column or relationship of {info.name}; expected one of "
                f"{sorted([*info.columns, *info.relationships])}."
            )
    return sa.and_(sa.true(), *clauses)


def _compare(
    column: Column, sql_column: Any, comparison: Mapping[str, Any], table: str
) -> list[ColumnElement[bool]]:
    clauses = []
    for operator, value in comparison.items():
        compare = _COMPARISONS.get(operator)
        if compare is None:
            raise InputError(
                f"{operator!r} is not a comparison operator; expected one of {list(_COMPARISONS)}."
            )
        if value is None:
            raise InputError(
                f"{table}.{column.name} {operator}: null is not a comparison; use"
                " {_is_null: true} to match rows where the column is null."
            )
        if operator in _PATTERNS and column.kind is not Kind.STRING:
            raise InputError(f"{table}.{column.name} is not a string; {operator} compares strings.")
        target = sql_column
        if operator in _RANGES and column.kind is Kind.STRING:
            target = code_points(sql_column)
        if operator in _LISTS:
            value = bind(comparison_value(operator, value), ValueList(sql_column.type))
        elif operator != "_is_null":
            value = bind(comparison_value(operator, value), sql_column.type)
        clauses.append(compare(target, value))
    return clauses


def comparison_value(operator: str, value: Any) -> Any:
    """``value`` as ``operator`` binds it: a list for ``_in``/``_nin`` (one parameter), a
    pattern checked for ``_like``/``_ilike``. A ``Param`` is returned as it is.

    Raises:
        InputError: a pattern ends in an unpaired ``\\`` (an escape with nothing to escape).
    """
    if isinstance(value, Param):
        return value
    if operator in _LISTS:
        return list(value)
    if operator in _PATTERNS and isinstance(value, str):
        trailing = len(value) - len(value.rstrip(ESCAPE))
        if trailing % 2:
            raise InputError(
                f"{operator} pattern {value!r} ends with an unpaired backslash, which escapes"
                " nothing; write \\\\ for a literal backslash."
            )
    return value


@dataclass(frozen=True)
class Param:
    """A named placeholder in place of a comparison value, bound when the statement runs.

    The compiled read path builds one statement per query shape and reuses it with new
    values; building it is what costs (about 1 ms), not running it.
    """

    key: str


def bind(value: Any, sql_type: Any) -> Any:
    """``value`` as a parameter of ``sql_type``; a ``Param`` becomes a named placeholder."""
    # A typed parameter rather than the bare value: SQLAlchemy treats a bare True/False as
    # the SQL constant (so `mapped <= true` would be refused), and the column's type must
    # convert the value (UTC timestamps, canonical JSON).
    if isinstance(value, Param):
        return sa.bindparam(value.key, type_=sql_type)
    return sa.bindparam(None, value, type_=sql_type)


def _exists(relationship: Relationship, source: FromClause, where: Where) -> ColumnElement[bool]:
    target_info = TABLES[relationship.target]
    target = target_info.table.alias()
    condition = where_clause(target_info, target, where)
    return sa.exists(
        sa.select(sa.literal(1))
        .select_from(target)
        .where(target.c[relationship.remote] == source.c[relationship.local], condition)
    )


def order_clauses(info: TableInfo, source: FromClause, order_by: OrderBy) -> list[Any]:
    """ORDER BY terms for ``order_by``, a list of ``{column: direction}`` objects.

    Nulls are placed explicitly (last ascending, first descending, PostgreSQL's default) and
    strings sort by code point, so both databases return the same order. An object
    relationship orders by a column of the related row, through a correlated scalar subquery
    that its primary key index serves.
    """
    terms: list[Any] = []
    for item in order_by:
        for key, direction in item.items():
            if direction is None:
                raise InputError(f"{info.name}_order_by.{key} is null; leave the field out.")
            if key in info.columns:
                terms.append(_direction(direction)(_orderable(info.columns[key], source.c[key])))
            elif key in info.relationships and not info.relationships[key].many:
                terms.extend(_related_order(info.relationships[key], source, direction))
            else:
                raise InputError(
                    f"{key!r} cannot order {info.name}; expected a column or a single-object"
                    f" relationship of {info.name}."
                )
    return terms


def _direction(direction: str) -> Callable[[Any], Any]:
    if direction not in _DIRECTIONS:
        raise InputError(f"{direction!r} is not an ordering; expected one of {list(_DIRECTIONS)}.")
    order, nulls = _DIRECTIONS[direction]
    return lambda column: nulls(order(column))


def _related_order(
    relationship: Relationship, source: FromClause, order: Mapping[str, Any]
) -> list[Any]:
    target_info = TABLES[relationship.target]
    target = target_info.table.alias()
    link = target.c[relationship.remote] == source.c[relationship.local]
    terms = []
    for column, direction in order.items():
        if column not in target_info.columns or direction is None:
            raise InputError(
                f"{relationship.source}_order_by.{relationship.name} can order by columns of"
                f" {relationship.target}; got {column!r}: {direction!r}."
            )
        value = sa.select(target.c[column]).where(link).scalar_subquery()
        terms.append(_direction(direction)(_orderable(target_info.columns[column], value)))
    return terms


def _orderable(column: Column, value: Any) -> Any:
    """``value`` (of ``column``) as ORDER BY sorts it: strings by code point everywhere."""
    return code_points(value) if column.kind is Kind.STRING else value
