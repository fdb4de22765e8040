"""The real server (``backend.testing.ServerThread``) with one persistent HTTP client, so
every timed request reuses the same keep-alive connection."""

from __future__ import annotations

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
            )
        )
        self._client: httpx.Client | None = None

    def __enter__(self) -> Server:
        self.start()
        # trust_env=False: never route loopback requests through a proxy from the environment.
        self._client = httpx.Client(base_url=self.url, trust_env=False, timeout=120)
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
