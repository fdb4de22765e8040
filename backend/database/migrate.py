"""Apply and write Alembic migrations without an alembic.ini.

The same revisions serve PostgreSQL and SQLite. ``upgrade`` is what the server runs on start
for the embedded database and what ``runview db upgrade`` runs for any database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` (default: the newest)."""
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.upgrade(_config(sync), revision))


async def upgrade_url(url: str) -> str | None:
    """Upgrade the database at ``url`` to the newest revision; the revision it is at."""
    from backend.database.engine import Database

    db = Database(url)
    try:
        await upgrade(db.engine)
        return await current(db.engine)
    finally:
        await db.dispose()


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Downgrade the database behind ``engine`` to ``revision`` ("base": empty)."""
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.downgrade(_config(sync), revision))


def head() -> str | None:
    """The newest revision the code knows."""
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


async def current(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


def compare(connection: Connection) -> list[Any]:
    """The differences between tables.py and the database (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from backend.database.tables import OUTBOX, metadata

    def include_name(name: str | None, kind: str, _: Any) -> bool:
        # SQLite's outbox of run events is made by its migration alone: the code reads it
        # with plain SQL (backend.models.events), it is no table of the API.
        return not (kind == "table" and name == OUTBOX)

    opts = {"compare_type": True, "include_name": include_name}
    context = MigrationContext.configure(connection, opts=opts)
    return list(compare_metadata(context, metadata))


async def revision(engine: AsyncEngine, message: str, **kwargs: Any) -> None:
    """Autogenerate a new revision from the difference between tables.py and ``engine``.

    For developers: point it at an up-to-date database, then read and edit the result.
    """
    async with engine.begin() as connection:
        await connection.run_sync(
            lambda sync: command.revision(
                _config(sync), message=message, autogenerate=True, **kwargs
            )
        )
