"""Read any table of the catalog: list, count, by primary key, and batched relationships.

Every function compiles its whole filter and ordering to one SQL statement; nothing is
filtered in Python. ``load_related`` is what keeps nested GraphQL selections free of N+1:
it loads a relationship for many parent rows in one statement.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import FromClause, Select

from backend.errors import InputError
from backend.models._filters import OrderBy, Where, order_clauses, where_clause
from backend.models._portable import in_values
from backend.models.catalog import TABLES, Relationship, TableInfo


def table_info(name: str) -> TableInfo:
    try:
        return TABLES[name]
    except KeyError:
        raise InputError(f"{name!r} is not a table; expected one of {sorted(TABLES)}.") from None


def _check_page(limit: int | None, offset: int | None) -> None:
    for name, value in (("limit", limit), ("offset", offset)):
        if value is not None and value < 0:
            raise InputError(f"{name} must be zero or more; got {value!r}.")


def _ordering(
    info: TableInfo, source: FromClause, order_by: OrderBy | None, paged: bool
) -> list[Any]:
    terms = order_clauses(info, source, order_by or [])
    # A page is only well defined over a total order: break ties on the primary key.
    if terms or paged:
        terms.append(source.c.id.asc())
    return terms


def _select(info: TableInfo, where: Where | None) -> Select[Any]:
    table = info.table
    return sa.select(table).where(where_clause(info, table, where or {}))


async def list_rows(
    conn: AsyncConnection,
    table: str,
    *,
    where: Where | None = None,
    order_by: OrderBy | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> Sequence[Row[Any]]:
    """Rows of ``table`` that match ``where``, in ``order_by`` order, paged."""
    info = table_info(table)
    _check_page(limit, offset)
    paged = limit is not None or offset is not None
    statement = (
        _select(info, where)
        .order_by(*_ordering(info, info.table, order_by, paged))
        .limit(limit)
        .offset(offset)
    )
    return (await conn.execute(statement)).all()


async def count_rows(conn: AsyncConnection, table: str, *, where: Where | None = None) -> int:
    """How many rows of ``table`` match ``where``."""
    info = table_info(table)
    statement = sa.select(sa.func.count()).select_from(info.table)
    statement = statement.where(where_clause(info, info.table, where or {}))
    return (await conn.execute(statement)).scalar_one()


async def read_row(conn: AsyncConnection, table: str, id: Any) -> Row[Any] | None:
    """The row of ``table`` whose primary key is ``id``, or None."""
    info = table_info(table)
    statement = sa.select(info.table).where(info.table.c.id == id)
    return (await conn.execute(statement)).one_or_none()


async def load_related(
    conn: AsyncConnection,
    relationship: Relationship,
    keys: Sequence[Hashable],
    *,
    where: Where | None = None,
    order_by: OrderBy | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> dict[Hashable, list[Row[Any]]]:
    """The related rows of many parents at once, grouped by the parent's key.

    ``keys`` are values of ``relationship.local`` on the parents. ``limit`` and ``offset``
    apply per parent, which one statement does with ``row_number()`` partitioned by parent.
    """
    info = TABLES[relationship.target]
    _check_page(limit, offset)
    table = info.table
    link = table.c[relationship.remote]
    statement = _select(info, where).where(in_values(link, keys))  # any number of parents
    paged = limit is not None or offset is not None
    ordering = _ordering(info, table, order_by, paged)
    if paged:
        position = sa.func.row_number().over(partition_by=link, order_by=ordering)
        ranked = statement.add_columns(position.label("_position")).subquery()
        first = offset or 0
        statement = sa.select(*(ranked.c[c.name] for c in table.c)).where(
            ranked.c._position > first
        )
        if limit is not None:
            statement = statement.where(ranked.c._position <= first + limit)
        statement = statement.order_by(ranked.c._position)
    else:
        statement = statement.order_by(*ordering)
    groups: dict[Hashable, list[Row[Any]]] = defaultdict(list)
    for row in (await conn.execute(statement)).all():
        groups[getattr(row, relationship.remote)].append(row)
    return groups
