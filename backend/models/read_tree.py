"""The shape of a compiled read: the tree ``backend.api.compiled`` builds from a GraphQL
selection and ``json_reads`` turns into SQL, and the helpers both sides share.

``Parameters`` takes every value out of a tree, leaving its shape: the same query with
another id has the same shape, so ``json_reads`` builds its statement once.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backend.errors import InputError
from backend.models._filters import OrderBy, Param, Where, comparison_value
from backend.models.catalog import TABLES, Relationship, TableInfo
from backend.models.reads import _check_page

_PATH = re.compile(r"(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]+\])+")
_PATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[([0-9]+)\]")


def json_path(text: str) -> tuple[str | int, ...]:
    """The steps of a jsonb ``path`` argument: ``"result.location"``, ``"$.tags[0]"``.

    Raises:
        InputError: the path is not keys (identifiers) and ``[n]`` indexes.
    """
    # "$.a[0]" and "a[0]" alike become ".a[0]": a chain of ".key" and "[n]" steps.
    body = text[1:] if text.startswith("$") else text if text.startswith("[") else "." + text
    if not _PATH.fullmatch(body):
        raise InputError(
            f"{text!r} is not a JSON path; expected keys and indexes such as"
            " 'result.location' or '$.tags[0]'."
        )
    return tuple(key or int(index) for key, index in _PATH_STEP.findall(body))


def follow(value: Any, steps: Sequence[str | int]) -> Any:
    """The part of ``value`` at ``steps``, or None where the path leads nowhere."""
    for step in steps:
        if isinstance(step, int) and isinstance(value, list) and step < len(value):
            value = value[step]
        elif isinstance(step, str) and isinstance(value, dict):
            value = value.get(step)
        else:
            return None
    return value


class Unsupported(Exception):
    """The tree asks for something one statement cannot build; use the executor instead."""


@dataclass(frozen=True)
class Value:
    """A column of the current row; for a jsonb column, optionally a path into it."""

    column: str
    path: tuple[str | int, ...] | None = None


@dataclass(frozen=True)
class Text:
    """A constant string (``__typename``)."""

    text: str


@dataclass(frozen=True)
class Obj:
    """An object with no row of its own behind it: the root, ``T_aggregate { aggregate }``."""

    fields: Fields


@dataclass(frozen=True)
class Rows:
    """A list of rows: a root list field, or a list relationship of the current row (``via``).

    ``cap``: at most this many rows when there is no ``limit`` (the server's default rows). A
    cap is not a page: it orders nothing that was not ordered, and it stays in the shape.
    """

    table: str
    fields: Fields
    where: Where | None = None
    order_by: OrderBy | None = None
    limit: int | Param | None = None
    offset: int | Param | None = None
    via: Relationship | None = None
    cap: int | None = None


@dataclass(frozen=True)
class Row:
    """One row or null: by primary key (``id``), or a to-one relationship (``via``)."""

    table: str
    fields: Fields
    id: Any = None
    via: Relationship | None = None


@dataclass(frozen=True)
class Count:
    """How many rows of ``table`` match ``where``."""

    table: str
    where: Where | None = None


Node = Value | Text | Obj | Rows | Row | Count
Fields = tuple[tuple[str, Node], ...]


class Parameters:
    """Takes the values out of a tree: each becomes a ``Param``, its value kept here.

    What decides the SQL stays in the shape: columns, operators, which arguments are
    given, and nulls (which ``where_clause`` refuses when it builds).
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def param(self, value: Any) -> Param:
        key = f"p{len(self.values)}"
        self.values[key] = value
        return Param(key)

    def optional(self, value: Any) -> Param | None:
        return None if value is None else self.param(value)

    def node(self, node: Any) -> Any:
        if isinstance(node, Obj):
            return Obj(self.fields(node.fields))
        if isinstance(node, Rows):
            info = TABLES[node.table]
            assert not isinstance(node.limit, Param) and not isinstance(node.offset, Param)
            _check_page(node.limit, node.offset)
            return dataclasses.replace(
                node,
                fields=self.fields(node.fields),
                where=self.where(info, node.where),
                limit=self.optional(node.limit),
                offset=self.optional(node.offset),
            )
        if isinstance(node, Row):
            fields = self.fields(node.fields)
            return dataclasses.replace(node, fields=fields, id=self.optional(node.id))
        if isinstance(node, Count):
            return dataclasses.replace(node, where=self.where(TABLES[node.table], node.where))
        return node

    def fields(self, fields: Fields) -> Fields:
        return tuple((key, self.node(node)) for key, node in fields)

    def where(self, info: TableInfo, where: Any) -> Any:
        if not isinstance(where, Mapping):
            return where  # where_clause says what is wrong with it
        shaped: dict[str, Any] = {}
        for key, value in where.items():
            if key in ("_and", "_or") and isinstance(value, list):
                shaped[key] = [self.where(info, item) for item in value]
            elif key == "_not":
                shaped[key] = self.where(info, value)
            elif key in info.relationships:
                shaped[key] = self.where(TABLES[info.relationships[key].target], value)
            elif key in info.columns and isinstance(value, Mapping):
                shaped[key] = {op: self.comparison(op, item) for op, item in value.items()}
            else:
                shaped[key] = value
        return shaped

    def comparison(self, operator: str, value: Any) -> Any:
        if operator == "_is_null" or value is None:
            return value  # part of the SQL, not a value in it
        # An _in list is one parameter too: the shape is the same whatever its length.
        return self.param(comparison_value(operator, value))
