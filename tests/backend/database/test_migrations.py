"""The migrations build exactly the tables of tables.py, on PostgreSQL and SQLite."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.database import migrate
from backend.database.engine import Database
from backend.database.tables import OUTBOX, metadata
from tests.conftest import BACKENDS, DatabaseFactory

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("backend", BACKENDS)
async def test_upgrade_an_empty_database_then_down_and_up_again(
    databases: DatabaseFactory, backend: str
) -> None:
    db = Database(databases.new(backend, migrated=False))
    try:
        assert await migrate.current(db.engine) is None
        await migrate.upgrade(db.engine)
        assert await migrate.current(db.engine) == migrate.head()
        async with db.connect() as conn:
            assert await conn.run_sync(migrate.compare) == []
            names = await conn.run_sync(lambda sync: set(sa.inspect(sync).get_table_names()))
        outbox = {OUTBOX} if backend == "sqlite" else set()  # run events, SQLite's way
        assert names == set(metadata.tables) | {"alembic_version"} | outbox

        await migrate.downgrade(db.engine, "base")
        async with db.connect() as conn:
            names = await conn.run_sync(lambda sync: set(sa.inspect(sync).get_table_names()))
        assert names == {"alembic_version"}

        await migrate.upgrade(db.engine)
        await migrate.upgrade(db.engine)  # a second upgrade is a no-op
        assert await migrate.current(db.engine) == migrate.head()
    finally:
        await db.dispose()


async def test_the_constraints_the_contract_names_exist(db: Database) -> None:
    def unique(sync: sa.Connection) -> dict[str, list[list[str]]]:
        inspector = sa.inspect(sync)
        return {
            name: sorted(c["column_names"] for c in inspector.get_unique_constraints(name))
            for name in metadata.tables
        }

    async with db.connect() as conn:
        constraints = await conn.run_sync(unique)
    assert constraints["flow"] == [["name"]]
    assert constraints["task"] == [["flow_id", "slug"]]
    assert constraints["flow_run"] == [["flow_id", "idempotency_key"]]
    assert constraints["task_run"] == [["flow_run_id", "task_id", "map_index"]]


async def test_every_foreign_key_leads_an_index(db: Database) -> None:
    """A relationship load or filter on a foreign key must never need a full scan."""

    def unindexed(sync: sa.Connection) -> list[str]:
        inspector = sa.inspect(sync)
        missing = []
        for name in metadata.tables:
            leading = {i["column_names"][0] for i in inspector.get_indexes(name)}
            leading |= {u["column_names"][0] for u in inspector.get_unique_constraints(name)}
            for fk in inspector.get_foreign_keys(name):
                if fk["constrained_columns"][0] not in leading:
                    missing.append(f"{name}.{fk['constrained_columns'][0]}")
        return missing

    async with db.connect() as conn:
        assert await conn.run_sync(unindexed) == []
