"""What the read API can see: each table's columns and relationships, as plain data.

Derived from ``backend.database.tables`` so that a column added there appears in the GraphQL
schema (and its filters and orderings) without being written down again. The API layer builds
its types from this catalog; the filter compiler resolves names against it.

A relationship joins ``source.local`` to ``target.remote``. ``many`` relationships are lists
(``flow_run.task_runs``); the others are single objects (``task_run.task``). Both directions
are spelled out because the GraphQL names differ per direction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import sqlalchemy as sa

from backend.database import tables
from backend.database.types import Timestamp


class Kind(StrEnum):
    """The GraphQL scalar a column is exposed as (Hasura's names)."""

    UUID = "uuid"
    STRING = "String"
    INT = "Int"
    FLOAT = "Float"
    BOOLEAN = "Boolean"
    TIMESTAMPTZ = "timestamptz"
    JSONB = "jsonb"

    @property
    def ordered(self) -> bool:
        """Whether _gt/_lt apply. JSON has no order SQLite and PostgreSQL agree on."""
        return self is not Kind.JSONB


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    nullable: bool


@dataclass(frozen=True)
class Relationship:
    name: str
    source: str
    target: str
    local: str
    remote: str
    many: bool


@dataclass(frozen=True)
class TableInfo:
    name: str
    columns: dict[str, Column]
    relationships: dict[str, Relationship] = field(default_factory=dict)

    @property
    def table(self) -> sa.Table:
        return tables.metadata.tables[self.name]


def _kind(column: sa.Column[object]) -> Kind:
    column_type = column.type
    if isinstance(column_type, Timestamp):
        return Kind.TIMESTAMPTZ
    if isinstance(column_type, sa.JSON):
        return Kind.JSONB
    for sa_type, kind in (
        (sa.Uuid, Kind.UUID),
        (sa.Boolean, Kind.BOOLEAN),
        (sa.Integer, Kind.INT),
        (sa.Float, Kind.FLOAT),
        (sa.String, Kind.STRING),
    ):
        if isinstance(column_type, sa_type):
            return kind
    raise TypeError(f"column {column!r} has a type the read API cannot expose: {column_type!r}")


# (source, name, target, local, remote, many)
_RELATIONSHIPS = [
    ("flow", "tasks", "task", "id", "flow_id", True),
    ("flow", "flow_runs", "flow_run", "id", "flow_id", True),
    ("task", "flow", "flow", "flow_id", "id", False),
    ("task", "task_runs", "task_run", "id", "task_id", True),
    ("flow_run", "flow", "flow", "flow_id", "id", False),
    ("flow_run", "task_runs", "task_run", "id", "flow_run_id", True),
    ("flow_run", "states", "flow_run_state", "id", "flow_run_id", True),
    ("flow_run", "logs", "log", "id", "flow_run_id", True),
    ("task_run", "flow_run", "flow_run", "flow_run_id", "id", False),
    ("task_run", "task", "task", "task_id", "id", False),
    ("task_run", "states", "task_run_state", "id", "task_run_id", True),
    ("task_run", "logs", "log", "id", "task_run_id", True),
    ("flow_run_state", "flow_run", "flow_run", "flow_run_id", "id", False),
    ("task_run_state", "task_run", "task_run", "task_run_id", "id", False),
    ("log", "flow_run", "flow_run", "flow_run_id", "id", False),
    ("log", "task_run", "task_run", "task_run_id", "id", False),
]


def _build() -> dict[str, TableInfo]:
    catalog = {
        name: TableInfo(
            name=name,
            columns={c.name: Column(c.name, _kind(c), bool(c.nullable)) for c in table.columns},
        )
        for name, table in tables.metadata.tables.items()
        if not table.info.get("private")
    }
    for source, name, target, local, remote, many in _RELATIONSHIPS:
        catalog[source].relationships[name] = Relationship(
            name, source, target, local, remote, many
        )
    return catalog


TABLES: dict[str, TableInfo] = _build()
