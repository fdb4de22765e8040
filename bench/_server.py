"""The real server (``backend.testing.ServerThread``) with one persistent HTTP client, so
every timed request reuses the same keep-alive connection.

``RUNVIEW_BENCH_AUTH=required`` serves with API keys required: an admin key is made in the
benchmark's database and every request sends it (the cost of auth, measured against a run
without it).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx

from backend.settings import Settings
from backend.testing import ServerThread


class Server(ServerThread):
    """A runview server on a free loopback port; ``statements`` records the SQL it runs."""

    def __init__(self, database_url: str, *, compiled_reads: bool = True) -> None:
        # upgrade_on_start=False: the benchmark migrates its databases itself, before seeding.
        # run_services=False: nothing but the measured requests touches the database.
        # compiled_reads=False: every query through Strawberry's executor (the reference).
        super().__init__(
            Settings(
                database_url=database_url,
                upgrade_on_start=False,
                run_services=False,
                compiled_reads=compiled_reads,
                auth=os.environ.get("RUNVIEW_BENCH_AUTH", "off"),
            )
        )
        self.database_url = database_url
        self.headers: dict[str, str] = {}
        self._client: httpx.Client | None = None

    def __enter__(self) -> Server:
        self.start()
        if self.settings.auth_required:
            self.headers["authorization"] = f"Bearer {asyncio.run(_admin_key(self.database_url))}"
        # trust_env=False: never route loopback requests through a proxy from the environment.
        self._client = httpx.Client(
            base_url=self.url, trust_env=False, timeout=120, headers=self.headers
        )
        return self

    def __exit__(self, *_: object) -> None:
        if self._client is not None:
            self._client.close()
        self.stop()

    def post(self, query: str, variables: dict[str, Any] | None = None) -> bytes:
        """POST a GraphQL query and return the raw response body (read in full, not decoded)."""
        assert self._client is not None, "use the server as a context manager"
        response = self._client.post("/graphql", json={"query": query, "variables": variables})
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:500]}")
        return response.content


async def _admin_key(database_url: str) -> str:
    import uuid

    from backend.database.engine import Database
    from backend.models import api_keys

    db = Database(database_url)
    try:
        async with db.begin() as conn:
            _, token = await api_keys.create_api_key(conn, f"bench-{uuid.uuid4().hex[:8]}", "admin")
        return token
    finally:
        await db.dispose()
