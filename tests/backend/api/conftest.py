"""A server over the fixed dataset, shared by a module's read-only tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from backend.database.engine import Database
from tests.backend.api.dataset import Dataset, seed
from tests.conftest import BACKENDS, DatabaseFactory, Server, run


async def _seed(url: str) -> Dataset:
    db = Database(url)
    try:
        return await seed(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def seeded(request: pytest.FixtureRequest, databases: DatabaseFactory) -> Iterator[Any]:
    """(server, dataset) over a database of this module's own; tests must only read."""
    url = databases.new(request.param)
    data = run(_seed(url))
    server = Server(url).start()
    yield server, data
    server.stop()
