"""Who may ask what: the Host allowlist, API keys as Bearer tokens, and scopes.

Three checks, in the order a request meets them:

1. ``Gate`` (ASGI middleware, every HTTP request and WebSocket): the ``Host`` header must name
   this server (``RUNVIEW_ALLOWED_HOSTS``), or DNS rebinding would let any web page a user
   opens talk to a loopback server. Then, with ``RUNVIEW_AUTH=required``, ``/graphql`` needs
   ``Authorization: Bearer <key>`` naming a live key: 401 otherwise, with a GraphQL error and
   no data. The playground's page, its assets and ``/health`` need no key (they hold no data).
   The key found is the request's ``Access``.
2. ``on_ws_connect``: a WebSocket carries its key in ``connection_init``'s payload (browsers
   cannot set headers on one); no live key closes it with 4403.
3. ``ScopeCheck`` (a schema extension, so it runs for every operation the executor runs,
   over HTTP or WebSocket): read keys query and subscribe, write keys also mutate, admin keys
   also delete runs. Too little scope is a ``FORBIDDEN`` error, answered 403. The compiled
   paths never serve an operation beyond the key's scope (``GraphQLEndpoint``): such a request
   goes to the executor, which refuses it here.

Found keys are kept ``RUNVIEW_AUTH_CACHE_SECONDS`` (5): asking the database on every request
would cost more than the rest of a small request. So a revoked key stops working within that
long; an unknown token is never cached, so a new key works at once.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from backend import models
from backend.api.errors import (
    REQUEST_ID,
    Answering,
    error_response,
    request_id_of,
    unavailable_response,
)
from backend.models import api_keys
from backend.settings import Settings

UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
# Mutations a write key may not run.
ADMIN_MUTATIONS = frozenset({"delete_flow_run"})
# Found keys kept at most; beyond that the cache starts over.
MAX_CACHED_KEYS = 10_000


@dataclass(frozen=True)
class Access:
    """What the request may do: its key's scope, and the key's name (``None``: auth is off)."""

    scope: str
    key_name: str | None = None

    def describe(self) -> str:
        return f"the key {self.key_name!r}" if self.key_name else "this request"


OPEN = Access("admin")


class Gate:
    """The Host allowlist and, when auth is required, the Bearer key of every request."""

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        keys: KeyCache,
        public_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.required = settings.auth_required
        self.allowed_hosts = frozenset(settings.resolved_allowed_hosts)
        self.keys = keys
        self.public_prefixes = public_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refuse_host(headers.get("host"))
        if refusal is None:
            access: Access | None = OPEN
            if self.required:
                access, refusal = await self._authenticate(scope, headers)
            scope.setdefault("state", {})["access"] = access
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4403, "reason": "Forbidden"})
        else:  # the id the endpoint would have given it, in the header, errors and log line
            request_id = request_id_of(scope)
            token = REQUEST_ID.set(request_id)
            try:
                await Answering(send, request_id).respond(refusal, scope)
            finally:
                REQUEST_ID.reset(token)

    def _refuse_host(self, host_header: str | None) -> JSONResponse | None:
        if "*" in self.allowed_hosts:
            return None
        host = _host_name(host_header)
        if host is not None and host in self.allowed_hosts:
            return None
        return error_response(
            f"This server does not answer to the Host {host_header!r}: expected one of"
            f" {', '.join(sorted(self.allowed_hosts))} (set RUNVIEW_ALLOWED_HOSTS to add the"
            " names clients use).",
            400,
            "BAD_HOST",
        )

    async def _authenticate(
        self, scope: Scope, headers: Headers
    ) -> tuple[Access | None, JSONResponse | None]:
        if scope["type"] == "websocket" or self._public(scope):
            return None, None  # a WebSocket shows its key in connection_init
        header = headers.get("authorization")
        if header is None:
            return None, unauthenticated(
                "This server requires an API key: send `Authorization: Bearer <key>`"
                " (`runview api-key create NAME --scope read` makes one)."
            )
        token = bearer_token(header)
        if token is None:
            return None, unauthenticated(
                f"The Authorization header {_clip(header)!r} is not `Bearer <key>`."
            )
        try:
            access = await self.keys.find(scope["app"].state.db, token)
        except ConnectionError:  # the database is down: 503, so clients retry
            return None, unavailable_response()
        if access is None:
            return None, unauthenticated(f"The API key {_clip(token)!r} is unknown or revoked.")
        return access, None

    def _public(self, scope: Scope) -> bool:
        path: str = scope["path"]
        if path == "/graphql":  # the playground's page; a GET with a query is an operation
            return scope["method"] == "GET" and b"query=" not in scope.get("query_string", b"")
        return path in ("/", "/health") or path.startswith(self.public_prefixes)


class KeyCache:
    """Keys found by their tokens, each trusted for ``seconds`` after it was read."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._found: dict[str, tuple[Access, float]] = {}

    async def find(self, db: models.Database, token: str) -> Access | None:
        digest = api_keys.token_hash(token)
        now = time.monotonic()
        cached = self._found.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        async with db.connect() as conn:
            row = await api_keys.read_api_key_by_token(conn, token)
        if row is None:
            self._found.pop(digest, None)
            return None
        access = Access(row.scope, row.name)
        if self.seconds > 0:
            if len(self._found) >= MAX_CACHED_KEYS:
                self._found.clear()
            self._found[digest] = (access, now + self.seconds)
        return access


async def authenticate_ws(keys: KeyCache, db: models.Database, params: Any) -> Access | None:
    """The access a WebSocket's ``connection_init`` payload grants, or ``None``."""
    if not isinstance(params, dict):
        return None
    header = params.get("Authorization", params.get("authorization"))
    token = bearer_token(header) if isinstance(header, str) else None
    return None if token is None else await keys.find(db, token)


def bearer_token(header: str) -> str | None:
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def needed_scope(operation: OperationDefinitionNode, fragments: dict[str, Any]) -> str:
    """The scope an operation needs: read, unless it mutates (write), or deletes (admin)."""
    if operation.operation is not OperationType.MUTATION:
        return "read"
    names = set(_root_fields(operation.selection_set, fragments))
    return "admin" if names & ADMIN_MUTATIONS else "write"


class ScopeCheck(SchemaExtension):
    """Refuses, before it runs, an operation the request's key has too little scope for."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        access: Access | None = getattr(context.context, "access", None)
        if access is None:  # a WebSocket that has not shown a key: nothing runs
            context.result = _refusal("Send an API key first.", UNAUTHENTICATED)
            yield
            return
        document = context.graphql_document
        operation = _operation(document, context.operation_name) if document else None
        if operation is not None:
            fragments = {
                d.name.value: d
                for d in document.definitions  # type: ignore[union-attr]
                if isinstance(d, FragmentDefinitionNode)
            }
            needed = needed_scope(operation, fragments)
            if not api_keys.covers(access.scope, needed):
                context.result = _refusal(
                    f"{access.describe().capitalize()} has scope {access.scope!r};"
                    f" this {operation.operation.value} needs {needed!r}.",
                    FORBIDDEN,
                )
        yield


def _refusal(message: str, code: str) -> ExecutionResult:
    return ExecutionResult(data=None, errors=[GraphQLError(message, extensions={"code": code})])


def unauthenticated(message: str) -> JSONResponse:
    response = error_response(message, 401, UNAUTHENTICATED)
    response.headers["www-authenticate"] = "Bearer"
    return response


def status_of(response_data: Any) -> int | None:
    """403 for a response refused for its scope (GraphQL-over-HTTP leaves the status to us)."""
    if isinstance(response_data, dict):
        for error in response_data.get("errors") or ():
            if (error.get("extensions") or {}).get("code") == FORBIDDEN:
                return 403
    return None


def _operation(document: Any, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is not None:
        operations = [o for o in operations if o.name and o.name.value == name]
    return operations[0] if len(operations) == 1 else None


def _root_fields(selection_set: SelectionSetNode, fragments: dict[str, Any]) -> Iterator[str]:
    seen: set[str] = set()
    pending = [selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                yield selection.name.value
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in seen and name in fragments:
                    seen.add(name)
                    pending.append(fragments[name].selection_set)


def _host_name(header: str | None) -> str | None:
    if not header:
        return None
    try:
        host = urllib.parse.urlsplit("//" + header).hostname
    except ValueError:
        return None
    return host


def _clip(text: str, keep: int = 8) -> str:
    """Enough of a secret to recognise it, not enough to use it."""
    return text if len(text) <= keep else text[:keep] + "…"
