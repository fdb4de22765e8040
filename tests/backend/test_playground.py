"""The GraphiQL playground over HTTP: a page that names only runview's own files, the vendored
files (served, licensed, matching their manifest), and a default query that runs.

The browser itself is tests/backend/test_playground_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from backend import models
from backend.database.engine import Database
from backend.playground import ASSETS, PREFIX
from backend.static import refresh
from tests.conftest import DatabaseFactory, Server, unused_port

CREATE_FLOW = "mutation { create_flow(input: {name: %s}) { id } }"
CREATE_RUN = "mutation { create_flow_run(input: {flow_name: %s}) { id } }"
TASK_RUN = """mutation ($input: get_or_create_task_run_input!) {
  get_or_create_task_run(input: $input) { id } }"""
MANIFEST = json.loads((ASSETS / "manifest.json").read_text())


class _Page(HTMLParser):
    """What a browser would fetch for the page, and the data blocks it carries."""

    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[dict[str, str | None]] = []  # the tags with src or href
        self.blocks: dict[str, str] = {}  # <script id=... type="application/json">
        self._block: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if "src" in attributes or "href" in attributes:
            self.fetched.append({"tag": tag, **attributes})
        if tag == "script" and attributes.get("type") == "application/json":
            self._block = attributes["id"]

    def handle_data(self, data: str) -> None:
        if self._block is not None:
            self.blocks[self._block] = self.blocks.get(self._block, "") + data

    def handle_endtag(self, tag: str) -> None:
        self._block = None


def _page(server: Server) -> tuple[httpx.Response, _Page]:
    response = httpx.get(f"{server.url}/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    parsed = _Page()
    parsed.feed(response.text)
    return response, parsed


def _default_query(server: Server) -> str:
    query: str = json.loads(_page(server)[1].blocks["playground-config"])["defaultQuery"]
    return query


@pytest.fixture
def sqlite_server(databases: DatabaseFactory) -> Iterator[Server]:
    """The page and its files do not depend on the database: one backend is enough."""
    running = Server(databases.new("sqlite")).start()
    yield running
    running.stop()


def test_the_page_names_only_same_origin_files(sqlite_server: Server) -> None:
    response, page = _page(sqlite_server)
    # No URL of any host: no CDN, no web font, no link that a browser might follow.
    assert re.findall(r"(?:https?|wss?)://", response.text, flags=re.IGNORECASE) == []
    assert re.findall(r"""(?:src|href)\s*=\s*["']?//|@import|url\(""", response.text) == []
    assert "crossorigin" not in response.text
    names = [tag.get("src") or tag.get("href") for tag in page.fetched]
    assert names[0] == "data:,"  # the favicon: none is fetched
    assert all(name and name.startswith(f"{PREFIX}/") for name in names[1:]), names
    assert len(names) - 1 == sum(len(p["files"]) for p in MANIFEST["packages"])
    # The browser enforces it too: nothing but this origin (and data: fonts and images).
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "http" not in policy and "*" not in policy


def test_every_file_the_page_names_is_served_for_good(sqlite_server: Server) -> None:
    _, page = _page(sqlite_server)
    kinds = {"script": "text/javascript; charset=utf-8", "link": "text/css; charset=utf-8"}
    versions = {p["directory"]: p["version"] for p in MANIFEST["packages"]}
    for tag in page.fetched[1:]:
        url = tag.get("src") or tag.get("href")
        response = httpx.get(f"{sqlite_server.url}{url}")
        assert response.status_code == 200, url
        assert response.headers["content-type"] == kinds[str(tag["tag"])], url
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["x-content-type-options"] == "nosniff"
        # The URL carries the version, so a browser may keep the file as long as it likes.
        directory = str(url).removeprefix(f"{PREFIX}/").split("/")[0]
        assert directory.endswith(f"-{versions[directory]}")
        digest = base64.b64encode(hashlib.sha256(response.content).digest()).decode()
        assert tag["integrity"] == f"sha256-{digest}"
        again = httpx.get(
            f"{sqlite_server.url}{url}", headers={"if-none-match": response.headers["etag"]}
        )
        assert again.status_code == 304
    for missing in ("react-0.0.0/x.js", "", "%2e%2e/refresh.py", "..%2f..%2fplayground.py"):
        assert httpx.get(f"{sqlite_server.url}{PREFIX}/{missing}").status_code == 404, missing


def test_each_vendored_package_has_its_license() -> None:
    for package in MANIFEST["packages"]:
        text = (ASSETS / package["directory"] / "LICENSE").read_text()
        assert "Permission is hereby granted, free of charge" in text, package["name"]
        assert "MIT License" in text, package["name"]


def test_the_manifest_matches_the_files_on_disk_and_the_pins() -> None:
    on_disk = {str(p.relative_to(ASSETS)) for p in ASSETS.rglob("*") if p.is_file()}
    listed = {"manifest.json"}
    for package in MANIFEST["packages"]:
        for entry in [*package["files"], package["license"]]:
            path = ASSETS / package["directory"] / entry["name"]
            data = path.read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], path
            assert len(data) == entry["size"], path
            listed.add(str(path.relative_to(ASSETS)))
    assert on_disk == listed  # nothing left over from an older version
    pins = [(p.tarball.name, p.tarball.version, p.tarball.integrity) for p in refresh.PACKAGES]
    assert [(p["name"], p["version"], p["integrity"]) for p in MANIFEST["packages"]] == pins


def test_the_default_query_lists_the_task_runs_of_the_newest_flow_run(server: Server) -> None:
    server.data(CREATE_FLOW % '"hello"')
    older = server.data(CREATE_RUN % '"hello"')["create_flow_run"]["id"]
    newer = server.data(CREATE_RUN % '"hello"')["create_flow_run"]["id"]
    task_run = server.data(TASK_RUN, {"input": {"flow_run_id": newer, "task_slug": "say-1"}})

    before = len(server.queries)
    query = _default_query(server)
    assert len(server.queries) - before == 1  # the page costs one statement
    assert query == (
        "query {\n"
        f'  task_run(where: {{flow_run_id: {{_eq: "{newer}"}}}}) {{\n'
        "    id\n    state\n    start_time\n    task { slug }\n  }\n}\n"
    )
    assert older not in query
    rows = server.data(query)["task_run"]
    assert rows == [
        {
            "id": task_run["get_or_create_task_run"]["id"],
            "state": "Pending",
            "start_time": None,
            "task": {"slug": "say-1"},
        }
    ]


def test_with_no_flow_run_the_default_query_still_runs(server: Server) -> None:
    query = _default_query(server)
    assert query.startswith("# No flow run is recorded yet.")
    assert server.data(query) == {"flow_run": []}


def test_the_page_opens_while_the_database_is_down() -> None:
    server = Server(f"postgresql+psycopg://postgres@127.0.0.1:{unused_port()}/none").start()
    try:
        assert _default_query(server).startswith("# No flow run is recorded yet.")
    finally:
        server.stop()


@pytest.mark.anyio
async def test_the_newest_flow_run_is_read_from_an_index(db: Database) -> None:
    """The page's one statement reads the end of ``ix_flow_run__created``, never the table."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    async with db.connect() as conn:
        assert await models.read_latest_flow_run_id(conn) is None
        statement, parameters = seen[-1]
        if db.dialect == "sqlite":
            explain = "EXPLAIN QUERY PLAN "
        else:
            # On a table this small PostgreSQL would rather read it all: make it choose.
            await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            explain = "EXPLAIN "
        result = await conn.exec_driver_sql(explain + statement, parameters)
        text = "\n".join(str(row[-1]) for row in result)
    assert "ix_flow_run__created" in text, text
    assert "TEMP B-TREE" not in text and "Sort" not in text, text  # no sort: the index's order


def test_a_get_with_a_query_still_executes(sqlite_server: Server) -> None:
    for accept in ("text/html", "application/json"):
        response = httpx.get(
            f"{sqlite_server.url}/graphql",
            params={"query": "{__typename}"},
            headers={"accept": accept},
        )
        assert response.status_code == 200
        assert response.json() == {"data": {"__typename": "Query"}}
