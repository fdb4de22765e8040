"""The playground in a real browser (Debian's Chromium under Playwright), with no internet:
every request that is not for the loopback server is refused and fails the test.

It loads /graphql over a recorded flow run, runs the default query, reads the answer in the
result pane, then sends an Authorization header typed in the headers editor; and, on a server
that requires keys, gets a 401 until the key is typed there. SQLite only: the
page is the same over either database. The screenshot is left at ``tmp_path/playground.png``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import Page, Request, Route, expect, sync_playwright

from backend.database.engine import Database
from backend.models import api_keys
from tests.conftest import DatabaseFactory, Server, run

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TASK_RUN = """mutation ($input: get_or_create_task_run_input!) {
  get_or_create_task_run(input: $input) { id } }"""
RESULT = ".graphiql-response .result-window"
HEADERS_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"


def _chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI"):  # .ci/run installs it: its absence there is a failure
        pytest.fail(f"{CHROMIUM} is missing; .ci/run should have installed Debian's chromium.")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium runs this test)")


class Recorder:
    """Wraps the app: the Authorization header of every POST /graphql the server received."""

    def __init__(self) -> None:
        self.app: Any = None
        self.authorization: list[str | None] = []

    def wrap(self, app: Any) -> Recorder:
        self.app = app
        return self

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/graphql":
            headers = dict(scope["headers"])
            value = headers.get(b"authorization")
            self.authorization.append(value.decode() if value is not None else None)
        await self.app(scope, receive, send)


@pytest.fixture
def recorded(databases: DatabaseFactory) -> Iterator[tuple[Server, Recorder, dict[str, str]]]:
    """A server over a flow run with one task run; what it received; the ids."""
    recorder = Recorder()
    server = Server(databases.new("sqlite"))
    server.wrap = recorder.wrap
    server.start()
    server.data('mutation { create_flow(input: {name: "hello"}) { id } }')
    run = server.data('mutation { create_flow_run(input: {flow_name: "hello"}) { id } }')
    flow_run_id = run["create_flow_run"]["id"]
    task = server.data(TASK_RUN, {"input": {"flow_run_id": flow_run_id, "task_slug": "greet-1"}})
    ids = {"flow_run": flow_run_id, "task_run": task["get_or_create_task_run"]["id"]}
    yield server, recorder, ids
    server.stop()


@pytest.fixture
def offline_page() -> Iterator[tuple[Page, list[str], list[str]]]:
    """A fresh headless page; the off-machine requests it tried; the page's own failures."""
    executable = _chromium()
    refused: list[str] = []
    failures: list[str] = []

    def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("blockedbyclient")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 800})
        context.route("**/*", only_loopback)
        page = context.new_page()
        page.on("pageerror", lambda error: failures.append(f"uncaught: {error}"))
        page.on(
            "websocket",
            lambda ws: None if urlsplit(ws.url).hostname in LOOPBACK else refused.append(ws.url),
        )
        # A Content-Security-Policy refusal is a page that would break in some browser.
        page.add_init_script(
            "document.addEventListener('securitypolicyviolation', e => console.error("
            "'CSP refused ' + e.blockedURI + ' by ' + e.violatedDirective))"
        )
        page.on(
            "console",
            lambda message: failures.append(message.text) if message.type == "error" else None,
        )
        try:
            yield page, refused, failures
        finally:
            browser.close()


def _graphql_posts(request: Request) -> bool:
    return request.method == "POST" and urlsplit(request.url).path == "/graphql"


def _is_query(request: Request) -> bool:
    return _graphql_posts(request) and "task_run(" in (request.post_data or "")


def test_the_playground_runs_the_default_query_offline(
    # recorded before offline_page: once Playwright's sync API runs its event loop in this
    # thread, no fixture can make a database (asyncio.run) any more.
    recorded: tuple[Server, Recorder, dict[str, str]],
    offline_page: tuple[Page, list[str], list[str]],
    tmp_path: Path,
) -> None:
    server, received, ids = recorded
    browser_page, refused, failures = offline_page

    browser_page.goto(f"{server.url}/graphql")
    execute = browser_page.get_by_role("button", name="Execute query (Ctrl-Enter)")
    expect(execute).to_be_visible(timeout=30_000)
    expect(browser_page.locator(".graphiql-query-editor")).to_contain_text(ids["flow_run"])

    with browser_page.expect_request(_is_query) as first:
        execute.click()
    result = browser_page.locator(RESULT)
    expect(result).to_contain_text(ids["task_run"], timeout=30_000)
    expect(result).to_contain_text('"slug": "greet-1"')
    assert json.loads(first.value.post_data or "{}")["query"].count(ids["flow_run"]) == 1
    browser_page.screenshot(path=str(tmp_path / "playground.png"))

    # An API key typed in the headers editor goes with the next request.
    browser_page.get_by_role("button", name="Headers", exact=True).click()
    editor = browser_page.locator(HEADERS_EDITOR)
    editor.click()
    browser_page.keyboard.press("Control+A")
    # insert_text, not typing: the editor would close each bracket and quote a second time.
    browser_page.keyboard.insert_text(json.dumps({"Authorization": "Bearer test-key"}))
    assert json.loads(editor.evaluate("e => e.CodeMirror.getValue()")) == {
        "Authorization": "Bearer test-key"
    }
    with browser_page.expect_request(_is_query) as second:
        execute.click()
    answer = second.value.response()
    assert answer is not None and answer.ok
    assert second.value.all_headers().get("authorization") == "Bearer test-key"
    assert received.authorization[0] is None  # before the key was typed
    assert "Bearer test-key" in received.authorization

    # The default query stays out of the URL: a reload opens on the newest flow run.
    assert "q=" not in urlsplit(browser_page.url).query

    # Headers are kept in this browser (GraphiQL saves its tabs half a second after the last
    # change): they are there again after a reload.
    browser_page.wait_for_function(
        "() => (localStorage.getItem('graphiql:tabState') || '').includes('Bearer test-key')"
    )
    browser_page.reload()
    expect(execute).to_be_visible(timeout=30_000)
    browser_page.get_by_role("button", name="Headers", exact=True).click()
    expect(editor).to_contain_text("Bearer test-key")

    # A shared link (?q=, as Strawberry's page makes them) opens on its own query.
    browser_page.goto(f"{server.url}/graphql?q={quote('{ flow { name } }')}")
    expect(browser_page.locator(".graphiql-query-editor")).to_contain_text("{ flow { name } }")

    assert refused == [], refused
    assert failures == [], failures
    assert (tmp_path / "playground.png").stat().st_size > 10_000


@pytest.fixture
def keyed(databases: DatabaseFactory) -> Iterator[tuple[Server, str, dict[str, str]]]:
    """A server requiring keys over a flow run with one task run; a read key; the ids."""
    url = databases.new("sqlite")

    async def make_key() -> str:
        db = Database(url)
        try:
            async with db.begin() as conn:
                return (await api_keys.create_api_key(conn, "browser", "read"))[1]
        finally:
            await db.dispose()

    token = run(make_key())
    # Recorded with auth off, then served with it required.
    with_data = Server(url).start()
    with_data.data('mutation { create_flow(input: {name: "hello"}) { id } }')
    flow_run = with_data.data('mutation { create_flow_run(input: {flow_name: "hello"}) { id } }')
    flow_run_id = flow_run["create_flow_run"]["id"]
    task = with_data.data(TASK_RUN, {"input": {"flow_run_id": flow_run_id, "task_slug": "greet-1"}})
    with_data.stop()
    server = Server(url).start(auth="required")
    yield server, token, {"flow_run": flow_run_id, "task_run": task["get_or_create_task_run"]["id"]}
    server.stop()


def test_the_playground_works_with_a_key(
    keyed: tuple[Server, str, dict[str, str]],
    offline_page: tuple[Page, list[str], list[str]],
) -> None:
    server, token, ids = keyed
    browser_page, refused, failures = offline_page

    browser_page.goto(f"{server.url}/graphql")
    execute = browser_page.get_by_role("button", name="Execute query (Ctrl-Enter)")
    expect(execute).to_be_visible(timeout=30_000)
    query_editor = browser_page.locator(".graphiql-query-editor")
    expect(query_editor).to_contain_text("requires an API key")
    assert ids["flow_run"] not in (query_editor.text_content() or "")  # served to anyone

    result = browser_page.locator(RESULT)
    with browser_page.expect_response(lambda r: _graphql_posts(r.request)) as refusal:
        execute.click()
    assert refusal.value.status == 401
    expect(result).to_contain_text("UNAUTHENTICATED", timeout=30_000)

    browser_page.get_by_role("button", name="Headers", exact=True).click()
    browser_page.locator(HEADERS_EDITOR).click()
    browser_page.keyboard.press("Control+A")
    browser_page.keyboard.insert_text(json.dumps({"Authorization": f"Bearer {token}"}))
    execute.click()
    expect(result).to_contain_text(ids["task_run"], timeout=30_000)
    expect(result).to_contain_text('"slug": "greet-1"')

    assert refused == [], refused
    # The 401 is a failed resource load in the console; anything else is a page failure.
    assert [f for f in failures if "401" not in f] == [], failures
