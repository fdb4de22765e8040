"""The tables of ARCHITECTURE.md, in SQLAlchemy Core.

Every key is a random UUID, made in Python, or for task runs created in bulk on PostgreSQL by
``gen_random_uuid()`` in the inserting statement: rows are created in bulk without a round trip
per id.
Indexes are the ones the read API's filters and relationship loads need: each foreign key is
the leading column of some index (a unique constraint counts), so "the task runs of this flow
run" is an index range scan, never a full scan.

``flow_run.parent_task_run_id`` has no foreign key on purpose: it would make ``flow_run`` and
``task_run`` reference each other, which SQLite can only build by recreating tables.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from backend.database.types import Jsonb, Timestamp, utcnow

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s__%(column_0_N_name)s",
        "uq": "uq_%(table_name)s__%(column_0_N_name)s",
        "fk": "fk_%(table_name)s__%(column_0_name)s__%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s__%(constraint_name)s",
    }
)


# Text compares by code point on every database: SQLite's BINARY does, and on PostgreSQL each
# text column is collated "C", whatever the database's locale. So ORDER BY and string ranges
# agree with SQLite and Python, and the indexes serve them (an index of another collation
# cannot serve a code-point sort).
TEXT = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")


def _id() -> sa.Column[uuid.UUID]:
    return sa.Column("id", sa.Uuid, primary_key=True, default=uuid.uuid4)


def _created() -> sa.Column[object]:
    return sa.Column("created", Timestamp, nullable=False, default=utcnow)


def _updated() -> sa.Column[object]:
    return sa.Column("updated", Timestamp, nullable=False, default=utcnow, onupdate=utcnow)


def _fk(column: str, target: str, *, nullable: bool = False) -> sa.Column[uuid.UUID]:
    return sa.Column(
        column, sa.Uuid, sa.ForeignKey(f"{target}.id", ondelete="CASCADE"), nullable=nullable
    )


def _run_state_columns() -> list[sa.Column[object]]:
    """The current state a run row carries (its history lives in the *_state table)."""
    return [
        sa.Column("state", TEXT, nullable=False),
        sa.Column("state_type", TEXT, nullable=False),
        sa.Column("state_message", TEXT),
        sa.Column("state_timestamp", Timestamp, nullable=False, default=utcnow),
        sa.Column("serialized_state", Jsonb),
        sa.Column("version", sa.Integer, nullable=False, default=0),
    ]


def _state_history(run: str) -> sa.Table:
    """The append-only history of a run's states: ``flow_run_state`` or ``task_run_state``."""
    return sa.Table(
        f"{run}_state",
        metadata,
        _id(),
        _fk(f"{run}_id", run),
        sa.Column("timestamp", Timestamp, nullable=False, default=utcnow),
        sa.Column("state", TEXT, nullable=False),
        sa.Column("type", TEXT, nullable=False),
        sa.Column("message", TEXT),
        sa.Column("result", Jsonb),
        sa.Column("details", Jsonb, nullable=False, default=dict),
        sa.Column("serialized_state", Jsonb),
        sa.Column("version", sa.Integer, nullable=False),
        # Why the server wrote something other than what was proposed ("this is a retry.");
        # also what a re-sent proposal is answered with.
        sa.Column("reason", TEXT),
        sa.Index(None, f"{run}_id", "timestamp"),
    )


flow = sa.Table(
    "flow",
    metadata,
    _id(),
    sa.Column("name", TEXT, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, default=1),
    sa.Column("description", TEXT),
    sa.Column("entrypoint", TEXT),
    # Labels a run of the flow gets when whoever creates it gives none: an agent claims a
    # run only if it has all the run's labels.
    sa.Column("labels", Jsonb, nullable=False, default=list, server_default="[]"),
    # The sha256 of the source file the flow was registered from: registering the same code
    # again changes nothing, changed code bumps the version.
    sa.Column("source_hash", TEXT),
    _created(),
    _updated(),
    sa.UniqueConstraint("name"),
)

task = sa.Table(
    "task",
    metadata,
    _id(),
    _fk("flow_id", "flow"),
    sa.Column("slug", TEXT, nullable=False),
    sa.Column("name", TEXT, nullable=False),
    sa.Column("mapped", sa.Boolean, nullable=False, default=False),
    sa.Column("max_retries", sa.Integer, nullable=False, default=0),
    sa.Column("retry_delay_seconds", sa.Float, nullable=False, default=0.0),
    sa.Column("tags", Jsonb, nullable=False, default=list),
    sa.UniqueConstraint("flow_id", "slug"),
)

flow_run = sa.Table(
    "flow_run",
    metadata,
    _id(),
    _fk("flow_id", "flow"),
    sa.Column("name", TEXT, nullable=False),
    sa.Column("parameters", Jsonb, nullable=False, default=dict),
    sa.Column("context", Jsonb, nullable=False, default=dict),
    sa.Column("labels", Jsonb, nullable=False, default=list),
    *_run_state_columns(),
    sa.Column("scheduled_start_time", Timestamp, nullable=False, default=utcnow),
    sa.Column("start_time", Timestamp),
    sa.Column("end_time", Timestamp),
    sa.Column("heartbeat", Timestamp),
    sa.Column("idempotency_key", TEXT),
    sa.Column("parent_task_run_id", sa.Uuid),
    _created(),
    _updated(),
    # Also serves "the runs of this flow" (flow_id is its leading column).
    sa.UniqueConstraint("flow_id", "idempotency_key"),
    sa.Index(None, "parent_task_run_id"),
    # Agents and the Late service look for due runs of a given state type.
    sa.Index(None, "state_type", "scheduled_start_time"),
    # Listings show the newest runs first, of every flow or of one.
    sa.Index(None, "created"),
    sa.Index(None, "flow_id", "created"),
)

task_run = sa.Table(
    "task_run",
    metadata,
    _id(),
    _fk("flow_run_id", "flow_run"),
    _fk("task_id", "task"),
    sa.Column("map_index", sa.Integer, nullable=False, default=-1),
    sa.Column("name", TEXT, nullable=False),
    *_run_state_columns(),
    sa.Column("run_count", sa.Integer, nullable=False, default=0),
    # The retry policy the run was created with: the task's row holds the latest declared,
    # and runs of another version of the code must not decide each other's retries.
    sa.Column("max_retries", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("retry_delay_seconds", sa.Float, nullable=False, default=0.0, server_default="0"),
    sa.Column("cache_key", TEXT),
    sa.Column("start_time", Timestamp),
    sa.Column("end_time", Timestamp),
    sa.Column("heartbeat", Timestamp),
    _created(),
    _updated(),
    # Also serves "the task runs of this flow run" (flow_run_id is its leading column).
    sa.UniqueConstraint("flow_run_id", "task_id", "map_index"),
    sa.Index(None, "task_id"),
    sa.Index(None, "cache_key"),
)

flow_run_state = _state_history("flow_run")
task_run_state = _state_history("task_run")

log = sa.Table(
    "log",
    metadata,
    _id(),
    _fk("flow_run_id", "flow_run"),
    _fk("task_run_id", "task_run", nullable=True),
    sa.Column("timestamp", Timestamp, nullable=False, default=utcnow),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("name", TEXT, nullable=False),
    sa.Column("message", TEXT, nullable=False),
    sa.Index(None, "flow_run_id", "timestamp"),
    sa.Index(None, "task_run_id", "timestamp"),
)

# SQLite's outbox of run events: made by migration 0006 alone (PostgreSQL announces them
# with NOTIFY instead), and read with plain SQL by backend.models.events. Not a table here.
OUTBOX = "run_event"

# The keys clients authenticate with. Only a hash of each token is kept: a stolen copy of the
# database lets nobody in. Not part of the read API (``info["private"]``): keys are managed
# from the server's command line, which opens the database itself.
api_key = sa.Table(
    "api_key",
    metadata,
    _id(),
    sa.Column("name", TEXT, nullable=False),
    sa.Column("scope", TEXT, nullable=False),
    # sha256 of the token, hex: the token is 256 random bits, so no slow hash is needed.
    sa.Column("token_hash", TEXT, nullable=False),
    _created(),
    sa.Column("revoked", Timestamp),
    sa.UniqueConstraint("token_hash"),
    # A name belongs to one live key at a time; a revoked key's name can be used again.
    sa.Index(
        "uq_api_key__name_live",
        "name",
        unique=True,
        postgresql_where=sa.text("revoked IS NULL"),
        sqlite_where=sa.text("revoked IS NULL"),
    ),
    info={"private": True},
)
