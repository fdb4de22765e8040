"""``/graphql``: the compiled paths first, Strawberry's view for everything else.

A JSON POST is offered to ``CompiledReads``, then to ``CompiledStates``; when one answers, its
JSON text goes out inside ``{"data": ...}``. Otherwise the request, body included, is handed
to Strawberry's ASGI view as if nothing had read it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.models import Database


class GraphQLEndpoint:
    def __init__(self, graphql: ASGIApp, compiled: Sequence[Compiled] = ()) -> None:
        self.graphql = graphql
        self.compiled = compiled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.compiled or scope["type"] != "http" or scope["method"] != "POST":
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
        try:
            # The standard library, as Strawberry parses: orjson reads integers beyond 64
            # bits as floats, which a proposal's details would then store.
            payload: Any = json.loads(body)
        except ValueError:
            return None  # Strawberry tells the client what is wrong with it
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return None
        variables, operation_name = payload.get("variables"), payload.get("operationName")
        if not isinstance(variables, dict | None) or not isinstance(operation_name, str | None):
            return None  # Strawberry says what is wrong with them
        for compiled in self.compiled:
            data = await compiled.execute(
                request.app.state.db,
                payload["query"],
                variables,
                operation_name,
            )
            if data is not None:
                return data
        return None


class Compiled(Protocol):
    """A path that answers some operations without the executor (``None``: not this one)."""

    async def execute(
        self,
        db: Database,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> str | None: ...


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
