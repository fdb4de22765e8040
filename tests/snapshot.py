"""What a database holds, read straight from it: equal snapshots before and after a request
mean the request changed nothing."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from backend.database import tables


def sync_url(url: str) -> str:
    """The test database's URL for a plain (synchronous) SQLAlchemy engine."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        parsed = parsed.set(drivername="sqlite")
    return parsed.render_as_string(hide_password=False)


class Snapshot:
    """Reads every table straight from the database: its row count and a hash of its rows."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(sync_url(url), poolclass=NullPool)

    def __call__(self) -> dict[str, tuple[int, str]]:
        state = {}
        with self.engine.connect() as conn:
            for table in tables.metadata.sorted_tables:
                rows = conn.execute(sa.select(table).order_by(*table.primary_key.columns)).all()
                digest = hashlib.sha256(repr([tuple(row) for row in rows]).encode()).hexdigest()
                state[table.name] = (len(rows), digest)
        return state
