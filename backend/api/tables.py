"""The Hasura-style read API, generated from the table catalog.

For every table ``T`` of ``backend.models.catalog`` this builds the object type ``T`` (its
columns, then its relationships), the inputs ``T_bool_exp`` and ``T_order_by``, the type
``T_aggregate``, and the root fields ``T``, ``T_by_pk`` and ``T_aggregate``. Writing these by
hand would mean four copies of every column list; generating them keeps one, and the exported
``schema.graphql`` shows the result for review.

Resolvers only translate: Strawberry inputs become plain dicts (``plain``) and
``backend.models`` turns them into SQL. Relationship fields go through the request's batch
loaders, so a nested selection costs one statement per level, not one per row. A list field
without ``limit`` answers the server's default rows at most (``backend.api.limits``).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from types import GenericAlias, SimpleNamespace
from typing import Any, Optional

import strawberry
from strawberry.types import Info
from strawberry.types.base import get_object_definition
from strawberry.types.field import StrawberryField

from backend import models
from backend.api.limits import answered
from backend.api.scalars import Jsonb
from backend.models import TABLES, Kind, Relationship, TableInfo
from backend.models.read_tree import follow, json_path

_PYTHON_TYPES: dict[Kind, Any] = {
    Kind.UUID: uuid.UUID,
    Kind.STRING: str,
    Kind.INT: int,
    Kind.FLOAT: float,
    Kind.BOOLEAN: bool,
    Kind.TIMESTAMPTZ: dt.datetime,
    Kind.JSONB: Jsonb,
}


@strawberry.enum(name="order_by", description="Sort direction, with where nulls go.")
class OrderDirection(enum.Enum):
    asc = "asc"
    asc_nulls_first = "asc_nulls_first"
    asc_nulls_last = "asc_nulls_last"
    desc = "desc"
    desc_nulls_first = "desc_nulls_first"
    desc_nulls_last = "desc_nulls_last"


def _list_of(item: Any) -> Any:
    """``list[item]`` for a type only known at run time."""
    return GenericAlias(list, (item,))


def plain(value: Any) -> Any:
    """An input value as plain data: dicts without UNSET fields, enum values."""
    if value is None or value is strawberry.UNSET:
        return None
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):  # graphql-core's coerced input objects (the compiled path)
        return {key: plain(item) for key, item in value.items()}
    definition = get_object_definition(value)
    if definition is None:
        return value
    return {
        field.name: plain(getattr(value, field.python_name))
        for field in definition.fields
        if getattr(value, field.python_name) is not strawberry.UNSET
    }


def _declare_input(cls: Any, fields: dict[str, Any], description: str) -> Any:
    """Make ``cls`` an input type whose fields are all optional (absent means UNSET)."""
    for name in fields:
        setattr(cls, name, strawberry.UNSET)
    cls.__annotations__ = {name: Optional[kind] for name, kind in fields.items()}  # noqa: UP045
    return strawberry.input(cls, name=cls.__name__, description=description)


def _comparison(kind: Kind) -> Any:
    python_type = _PYTHON_TYPES[kind]
    fields: dict[str, Any] = {"_eq": python_type, "_neq": python_type}
    if kind.ordered:
        fields |= {op: python_type for op in ("_gt", "_gte", "_lt", "_lte")}
    fields |= {"_in": _list_of(python_type), "_nin": _list_of(python_type), "_is_null": bool}
    if kind is Kind.STRING:
        fields |= {"_like": str, "_ilike": str}
    return _declare_input(
        type(f"{kind.value}_comparison_exp", (), {}),
        fields,
        f"Conditions on a column of type {kind.value}; all given conditions must hold.",
    )


_COMPARISON_TYPES = {kind: _comparison(kind) for kind in Kind}


class _Types:
    """The generated types of every table, created first as empty classes so that
    mutually referring types (task_run.task, task.task_runs) can name each other."""

    def __init__(self, catalog: dict[str, TableInfo]) -> None:
        self.catalog = catalog
        self.bool_exp = {name: type(f"{name}_bool_exp", (), {}) for name in catalog}
        self.order_by = {name: type(f"{name}_order_by", (), {}) for name in catalog}
        self.object = {name: type(name, (), {}) for name in catalog}
        self.aggregate = {name: self._aggregate(name) for name in catalog}
        for meta in catalog.values():
            self._fill_bool_exp(meta)
            self._fill_order_by(meta)
            self._fill_object(meta)

    def _fill_bool_exp(self, meta: TableInfo) -> None:
        this = self.bool_exp[meta.name]
        fields: dict[str, Any] = {"_and": _list_of(this), "_or": _list_of(this), "_not": this}
        fields |= {name: _COMPARISON_TYPES[c.kind] for name, c in meta.columns.items()}
        fields |= {name: self.bool_exp[r.target] for name, r in meta.relationships.items()}
        _declare_input(
            this,
            fields,
            f"A filter on {meta.name}. Fields are ANDed; a list relationship matches when any"
            " related row does.",
        )

    def _fill_order_by(self, meta: TableInfo) -> None:
        fields: dict[str, Any] = {name: OrderDirection for name in meta.columns}
        fields |= {
            name: self.order_by[r.target] for name, r in meta.relationships.items() if not r.many
        }
        _declare_input(
            self.order_by[meta.name],
            fields,
            f"An ordering of {meta.name}; give a list of these for several sort keys.",
        )

    def _fill_object(self, meta: TableInfo) -> None:
        cls = self.object[meta.name]
        cls.__annotations__ = {
            name: Optional[_PYTHON_TYPES[c.kind]] if c.nullable else _PYTHON_TYPES[c.kind]  # noqa: UP045
            for name, c in meta.columns.items()
        }
        for name, column in meta.columns.items():
            if column.kind is Kind.JSONB:
                cls.__annotations__[name] = Optional[Jsonb]  # noqa: UP045
                setattr(cls, name, _jsonb_field(name))
        for name, relationship in meta.relationships.items():
            setattr(cls, name, self._relationship_field(relationship, meta))
        strawberry.type(cls, name=meta.name, description=f"A row of the {meta.name} table.")

    def _relationship_field(self, relationship: Relationship, meta: TableInfo) -> StrawberryField:
        target = self.object[relationship.target]
        if relationship.many:

            async def many(
                root: Any,
                info: Info,
                where: Any = None,
                order_by: Any = None,
                limit: int | None = None,
                offset: int | None = None,
            ) -> list[Any]:
                rows = await info.context.related(
                    relationship,
                    getattr(root, relationship.local),
                    where=plain(where),
                    order_by=plain(order_by),
                    limit=limit,
                    offset=offset,
                )
                return answered(info.context, rows, limit)

            many.__annotations__ = self._list_arguments(relationship.target) | {
                "root": Any,
                "info": Info,
                "return": _list_of(target),
            }
            return strawberry.field(resolver=many)

        async def one(root: Any, info: Info) -> Any:
            key = getattr(root, relationship.local)
            if key is None:
                return None
            rows = await info.context.related(relationship, key)
            return rows[0] if rows else None

        nullable = meta.columns[relationship.local].nullable
        one.__annotations__ = {
            "root": Any,
            "info": Info,
            "return": Optional[target] if nullable else target,  # noqa: UP045
        }
        return strawberry.field(resolver=one)

    def _list_arguments(self, table: str) -> dict[str, Any]:
        return {
            "where": Optional[self.bool_exp[table]],  # noqa: UP045
            "order_by": Optional[_list_of(self.order_by[table])],  # noqa: UP045
            "limit": Optional[int],  # noqa: UP045
            "offset": Optional[int],  # noqa: UP045
        }

    def _aggregate(self, table: str) -> Any:
        fields = type(f"{table}_aggregate_fields", (), {"__annotations__": {"count": int}})
        strawberry.type(fields, name=f"{table}_aggregate_fields")
        holder = type(f"{table}_aggregate", (), {"__annotations__": {"aggregate": fields}})
        return strawberry.type(holder, name=f"{table}_aggregate")

    def root_fields(self) -> list[StrawberryField]:
        fields = []
        for name in self.catalog:
            fields += [self._list_root(name), self._by_pk_root(name), self._aggregate_root(name)]
        return fields

    def _list_root(self, table: str) -> StrawberryField:
        async def rows(
            info: Info,
            where: Any = None,
            order_by: Any = None,
            limit: int | None = None,
            offset: int | None = None,
        ) -> list[Any]:
            async with info.context.db.connect() as conn:
                found = await models.list_rows(
                    conn,
                    table,
                    where=plain(where),
                    order_by=plain(order_by),
                    limit=limit,
                    offset=offset,
                )
            return answered(info.context, list(found), limit)

        rows.__annotations__ = self._list_arguments(table) | {
            "info": Info,
            "return": _list_of(self.object[table]),
        }
        rows.__name__ = table  # create_type keys fields by the resolver's name
        return strawberry.field(
            resolver=rows, name=table, description=f"Rows of {table}, filtered and ordered."
        )

    def _by_pk_root(self, table: str) -> StrawberryField:
        async def by_pk(info: Info, id: uuid.UUID) -> Any:
            async with info.context.db.connect() as conn:
                return await models.read_row(conn, table, id)

        by_pk.__annotations__ = {
            "info": Info,
            "id": uuid.UUID,
            "return": Optional[self.object[table]],  # noqa: UP045
        }
        by_pk.__name__ = f"{table}_by_pk"
        return strawberry.field(
            resolver=by_pk, name=f"{table}_by_pk", description=f"One {table} by its id."
        )

    def _aggregate_root(self, table: str) -> StrawberryField:
        async def aggregate(info: Info, where: Any = None) -> Any:
            async with info.context.db.connect() as conn:
                count = await models.count_rows(conn, table, where=plain(where))
            return SimpleNamespace(aggregate=SimpleNamespace(count=count))

        aggregate.__annotations__ = {
            "info": Info,
            "where": Optional[self.bool_exp[table]],  # noqa: UP045
            "return": self.aggregate[table],
        }
        aggregate.__name__ = f"{table}_aggregate"
        return strawberry.field(
            resolver=aggregate,
            name=f"{table}_aggregate",
            description=f"Aggregates over the rows of {table} that match where.",
        )


def _jsonb_field(column: str) -> StrawberryField:
    """A jsonb column, whole or (Hasura's ``path``) the part of it at a JSON path.

    Nullable whatever the column: a path may lead nowhere, and that answers null.
    """

    def value(root: Any, path: str | None = None) -> Any:
        data = getattr(root, column)
        return data if path is None else follow(data, json_path(path))

    value.__annotations__ = {"root": Any, "path": Optional[str], "return": Optional[Jsonb]}  # noqa: UP045
    return strawberry.field(resolver=value)


TYPES = _Types(TABLES)
