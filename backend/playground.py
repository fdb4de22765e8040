"""The GraphiQL playground: runview's own page for GET /graphql, and the files it loads.

Strawberry decides which requests get the page (a GET without ``query=`` that accepts HTML);
``page`` answers them. Nothing on the page comes from elsewhere: its scripts and styles are
the GraphiQL build vendored in ``backend/static/graphiql`` (see ``backend.static.refresh``),
served by ``Assets`` under ``/static/graphiql/<package>-<version>/``, and its
Content-Security-Policy tells the browser to load nothing from any other origin.

The default query lists the task runs of the newest flow run (id, state, start time, task
slug), its id filled in by the server; when the server requires keys, the page (served to
anyone) names no run and the query finds the newest itself.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import logging
import os
import string
import uuid
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from backend import models

logger = logging.getLogger("runview.server")

STATIC = Path(__file__).parent / "static"
ASSETS = STATIC / "graphiql"
PREFIX = "/static/graphiql"

_TASK_RUNS_QUERY = string.Template("""\
query {
  task_run(where: {flow_run_id: {_eq: $id}}) {
    id
    state
    start_time
    task { slug }
  }
}
""")

# Before the first flow run there is no id to ask about; this still runs (and answers []).
_NO_FLOW_RUN_QUERY = """\
# No flow run is recorded yet. Once one is, this page opens on the task runs of
# the newest; until then, this lists the newest flow runs with their task runs.
query {
  flow_run(order_by: {created: desc}, limit: 10) {
    id
    name
    state
    task_runs {
      id
      state
      start_time
      task { slug }
    }
  }
}
"""

# When the server requires keys the page is served to anyone, so it names no run: the
# query finds the newest itself once the user has typed a key in the Headers tab.
_KEYED_QUERY = """\
# This server requires an API key: add {"Authorization": "Bearer <key>"} in the
# Headers tab below. This lists the task runs of the newest flow run.
query {
  flow_run(order_by: {created: desc}, limit: 1) {
    id
    name
    task_runs {
      id
      state
      start_time
      task { slug }
    }
  }
}
"""

# Version-named URLs never change content: a browser may keep what it fetched for good.
_IMMUTABLE = "public, max-age=31536000, immutable"
_MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def default_query(flow_run_id: uuid.UUID | None) -> str:
    """The query the editor opens on: the task runs of the flow run ``flow_run_id``."""
    if flow_run_id is None:
        return _NO_FLOW_RUN_QUERY
    # A JSON string of a UUID is a GraphQL string literal.
    return _TASK_RUNS_QUERY.substitute(id=json.dumps(str(flow_run_id)))


async def page(request: Request) -> Response:
    """The playground for ``request``, its default query over this server's newest flow run."""
    if getattr(request.state, "access", True) is None:  # no key: the page shows no data
        query = _KEYED_QUERY
    else:
        db: models.Database = request.app.state.db
        try:
            async with db.connect_single() as conn:
                flow_run_id = await models.read_latest_flow_run_id(conn)
        except Exception as error:  # the page still opens; the query tells what is wrong
            logger.warning("playground: cannot read the newest flow run: %s", error)
            flow_run_id = None
        query = default_query(flow_run_id)
    text, policy = render(query, request.scope.get("root_path", ""))
    return HTMLResponse(
        text,
        headers={
            "content-security-policy": policy,
            # The default query changes with every new flow run.
            "cache-control": "no-cache",
            "x-content-type-options": "nosniff",
        },
    )


def render(query: str, root_path: str = "") -> tuple[str, str]:
    """The page's HTML with ``query`` in the editor, and the Content-Security-Policy for it."""
    template, script, policy = _template()
    styles, scripts = [], []
    for url, digest in _assets(root_path):
        src = html.escape(url)
        if url.endswith(".css"):
            styles.append(f'    <link rel="stylesheet" href="{src}" integrity="{digest}" />')
        else:
            scripts.append(f'    <script src="{src}" integrity="{digest}"></script>')
    text = template.substitute(
        styles="\n".join(styles),
        scripts="\n".join(scripts),
        config=_script_json({"defaultQuery": query}),
        script=script,
    )
    return text, policy


def _script_json(value: Any) -> str:
    """JSON that stays data inside a <script> element: no ``</script>``, no ``<!--``."""
    text = json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@functools.cache
def _template() -> tuple[string.Template, str, str]:
    script = (STATIC / "playground.js").read_text()
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    policy = "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' 'sha256-{digest}'",  # the vendored files and our one script
            "style-src 'self' 'unsafe-inline'",  # GraphiQL styles elements as it renders
            "img-src 'self' data:",
            "font-src 'self' data:",  # graphiql.min.css embeds its fonts
            "connect-src 'self'",  # /graphql over HTTP, and over WebSocket for subscriptions
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'self'",
        ]
    )
    return string.Template((STATIC / "playground.html").read_text()), script, policy


@functools.cache
def _assets(root_path: str) -> list[tuple[str, str]]:
    """(URL, Subresource Integrity) of each file the page loads, in load order."""
    manifest = json.loads((ASSETS / "manifest.json").read_text())
    found = []
    for package in manifest["packages"]:
        for file in package["files"]:
            digest = base64.b64encode(bytes.fromhex(file["sha256"])).decode()
            url = f"{root_path}{PREFIX}/{package['directory']}/{file['name']}"
            found.append((url, f"sha256-{digest}"))
    return found


class Assets(StaticFiles):
    """The vendored files, routed as ``/static/graphiql/{path:path}``, with their content types
    and cache lifetime set here rather than by the machine's mime.types.

    A ``Route``, not a ``Mount``: every route of the app keeps an ``endpoint``.
    """

    def __init__(self) -> None:
        super().__init__(directory=ASSETS)

    def get_path(self, scope: Scope) -> str:
        # StaticFiles still refuses any path that resolves outside ASSETS.
        return os.path.normpath(os.path.join(*scope["path_params"]["path"].split("/")))

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        path = Path(full_path)
        # Only files under a <package>-<version>/ directory: manifest.json keeps its URL.
        if path.parent != ASSETS.resolve():
            response.headers["cache-control"] = _IMMUTABLE
        response.headers["x-content-type-options"] = "nosniff"
        if response.status_code == 200 and path.suffix in _MEDIA_TYPES:
            response.headers["content-type"] = _MEDIA_TYPES[path.suffix]
        return response
