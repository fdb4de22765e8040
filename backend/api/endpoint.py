"""``/graphql``: the compiled read path first, Strawberry's view for everything else.

A JSON POST is offered to ``CompiledReads``; when it answers, the database's JSON text goes
out inside ``{"data": ...}`` untouched. Otherwise the request, body included, is handed to
Strawberry's ASGI view as if nothing had read it.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.compiled import CompiledReads


class GraphQLEndpoint:
    def __init__(self, graphql: ASGIApp, reads: CompiledReads | None) -> None:
        self.graphql = graphql
        self.reads = reads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.reads is None or scope["type"] != "http" or scope["method"] != "POST":
            await self.graphql(scope, receive, send)
            return
        request = Request(scope, receive)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            await self.graphql(scope, receive, send)  # multipart uploads and the like
            return
        body = await request.body()
        data = await self._answer(request, body)
        if data is not None:
            response = Response(b'{"data":' + data.encode() + b"}", media_type="application/json")
            await response(scope, receive, send)
            return
        await self.graphql(scope, _replay(body, receive), send)

    async def _answer(self, request: Request, body: bytes) -> str | None:
        assert self.reads is not None
        try:
            payload: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None  # Strawberry tells the client what is wrong with it
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return None
        return await self.reads.execute(
            request.app.state.db,
            payload["query"],
            payload.get("variables"),
            payload.get("operationName"),
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that first gives back the body already read, then waits as before."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
