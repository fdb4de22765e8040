"""``/graphql``: the checkpoint every request passes, then the compiled paths, then Strawberry.

The checkpoint reads a JSON POST (or a GET with ``?query=``) itself and refuses, before anything
else sees it, what no path may be given:

- a POST that is not ``application/json`` (415; multipart is Strawberry's to judge);
- a body that is not JSON (NaN, Infinity and numbers beyond a float included), not a JSON
  object, or nested deeper than ``MAX_NESTING``; a ``query`` that is not a string,
  ``variables`` not an object, ``operationName`` not a string: 400;
- a document of several operations without ``operationName`` (GraphQL over HTTP: the
  server may not guess one), or with one it does not define: 400;
- text no database can store (``backend.api.scalars``: a NUL character, a lone surrogate) in
  any String or jsonb value, literal or variable; a literal number beyond a float; a literal
  nested deeper than ``MAX_NESTING``: 200 with the error, as graphql-core answers a variable
  it cannot coerce. Not so the records a mutation judges one by one (``JUDGED_ALONE``: a
  log record's text, a proposed state): each of those is refused alone, with its reason.

Then a JSON POST is offered to ``CompiledReads``, then to ``CompiledStates``; when one
answers, its JSON text goes out inside ``{"data": ...}``. Otherwise the request, body
included, is handed to Strawberry's ASGI view as if nothing had read it.

Every request gets an id (the client's ``x-request-id``, if it sends a sane one): the
``x-request-id`` header of the answer, ``extensions.request_id`` of each error in it, and
the prefix of what the server logs meanwhile (``backend.api.errors``).
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from graphql import (
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    parse,
    type_from_ast,
)
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api import scalars
from backend.api.errors import (
    FAULT_MESSAGE,
    INTERNAL,
    REQUEST_ID,
    Answering,
    error_response,
    request_id_of,
    unavailable_response,
)
from backend.api.limits import LimitExceeded, limit_body, refusal
from backend.api.scalars import MAX_NESTING
from backend.errors import shown
from backend.models import Database
from backend.models.api_keys import covers

logger = logging.getLogger("runview.server")

_EXAMPLE = '{"query": "{ flow { name } }", "variables": {}}'


class GraphQLEndpoint:
    def __init__(
        self,
        graphql: ASGIApp,
        compiled: Sequence[Compiled] = (),
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.graphql = graphql
        self.compiled = compiled
        # The view's schema unless told: the checkpoint judges by the types it executes.
        self.checkpoint = checkpoint or Checkpoint(graphql.schema._schema)  # type: ignore[attr-defined]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.graphql(scope, receive, send)
            return
        request_id = request_id_of(scope)
        token = REQUEST_ID.set(request_id)
        answering = Answering(send, request_id)
        try:
            await self._serve(scope, receive, answering)
        except LimitExceeded as error:  # the body's size, or a compiled path's check
            await answering.respond(await refusal(Request(scope), error), scope)
        except ConnectionError as error:  # the database is down: 503, so clients retry
            logger.warning("answering 503: %s", error)
            await answering.respond(unavailable_response(), scope)
        except HTTPException:
            raise  # a status chosen on purpose (Starlette answers it)
        except Exception:
            if answering.started:
                raise
            logger.exception("the request failed")
            await answering.respond(error_response(FAULT_MESSAGE, 500, INTERNAL), scope)
        finally:
            REQUEST_ID.reset(token)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        receive = limit_body(scope, receive)  # 413 past RUNVIEW_MAX_BODY_BYTES, unparsed
        request = Request(scope, receive)
        body, content_type = b"", _content_type(request)
        if scope["method"] == "POST" and content_type == "application/json":
            body = await request.body()
            payload: Any = _read_json(body, "The request body")
        elif scope["method"] == "POST" and not content_type.startswith("multipart/"):
            payload = error_response(
                f"The request's content-type {content_type!r} is not one /graphql reads;"
                " expected 'application/json'.",
                status=415,
            )
        elif scope["method"] == "GET" and "query" in request.query_params:
            payload = _from_query_string(request)
        else:  # GraphiQL's page, multipart uploads and the like: Strawberry's business
            await self.graphql(scope, receive, send)
            return
        refused = payload if isinstance(payload, Response) else self.checkpoint.refusal(payload)
        if refused is None and scope["method"] == "GET":
            refused = self.checkpoint.refusal_over_get(payload)
        if refused is not None:
            await refused(scope, receive, send)
            return
        if scope["method"] == "POST" and self.compiled:
            data = await self._compiled(request, payload)
            if data is not None:
                response = Response(
                    b'{"data":' + data.encode() + b"}", media_type="application/json"
                )
                await response(scope, receive, send)
                return
        await self.graphql(scope, _replay(body, receive) if body else receive, send)

    async def _compiled(self, request: Request, payload: dict[str, Any]) -> str | None:
        access = request.state.access
        for compiled in self.compiled:
            if not covers(access.scope, compiled.scope):
                continue  # the executor refuses it, in its words (backend.api.auth)
            data = await compiled.execute(
                request.app.state.db,
                payload["query"],
                payload.get("variables"),
                payload.get("operationName"),
            )
            if data is not None:
                return data
        return None


class Compiled(Protocol):
    """A path that answers some operations without the executor (``None``: not this one)."""

    scope: str

    async def execute(
        self,
        db: Database,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> str | None: ...


@dataclass(frozen=True)
class _Document:
    """What the checkpoint knows of a query text: its operations, and what is wrong with its
    literals (``None``: nothing). ``operations`` is ``None`` when it does not parse, which
    Strawberry words."""

    operations: tuple[OperationDefinitionNode, ...] | None
    problem: str | None = None


class Checkpoint:
    """The checks every request passes before any path executes it."""

    def __init__(self, schema: GraphQLSchema, cache_size: int = 512) -> None:
        self.schema = schema
        # Clients resend the same few documents: parse and walk each once.
        self._document = functools.lru_cache(maxsize=cache_size)(self._document_uncached)

    def refusal(self, payload: Any) -> Response | None:
        """The answer refusing ``payload`` (the decoded body), or ``None``: pass it on."""
        problem = self.problem(payload)
        return None if problem is None else error_response(*problem)

    def problem(self, payload: Any) -> tuple[str, int] | None:
        """What is wrong with ``payload`` (a decoded request, or a WebSocket's subscribe
        payload) and the HTTP status that says so; ``None``: nothing this checkpoint sees."""
        if not isinstance(payload, dict):
            kind = "array (batching is off)" if isinstance(payload, list) else _json_kind(payload)
            return (
                f"The request body is a JSON {kind}, {_json_shown(payload)}; expected an"
                f" object such as {_EXAMPLE}.",
                400,
            )
        query, variables = payload.get("query"), payload.get("variables")
        name = payload.get("operationName")
        for key, value, wanted, kinds in (
            ("query", query, "a string holding a GraphQL document", str),
            ("variables", variables, "an object or null", dict | None),
            ("operationName", name, "a string or null", str | None),
            ("extensions", payload.get("extensions"), "an object or null", dict | None),
        ):
            if not isinstance(value, kinds):
                got = "missing" if key not in payload else _json_shown(value)
                return f"The request's {key} is {got}; expected {wanted}.", 400
        if not query:
            return "The request's query is empty; expected a GraphQL document.", 400
        too_deep = scalars.too_deep(variables or {})
        if too_deep is not None:
            return (
                f"variable ${too_deep} is nested more than {MAX_NESTING} levels deep (objects"
                f" and lists within each other); expected at most {MAX_NESTING}.",
                400,
            )
        document = self._document(query)
        if document.operations is None:
            return None  # a syntax error: Strawberry words it
        operation = _chosen(document.operations, name)
        if isinstance(operation, str):
            return operation, 400
        problem = document.problem or self._variables_problem(operation, variables or {})
        return None if problem is None else (problem, 200)

    def refusal_over_get(self, payload: dict[str, Any]) -> Response | None:
        """A mutation sent with GET (which caches and prefetchers may send again): 405."""
        document = self._document(payload["query"])
        operation = _chosen(document.operations or (), payload.get("operationName"))
        if isinstance(operation, str) or operation.operation is not OperationType.MUTATION:
            return None
        return error_response(
            "A mutation cannot be sent with GET, which may be sent again unasked; expected POST.",
            status=405,
        )

    def _document_uncached(self, query: str) -> _Document:
        try:
            document = parse(query)
        except GraphQLError:
            return _Document(None)
        operations = tuple(
            d for d in document.definitions if isinstance(d, OperationDefinitionNode)
        )
        return _Document(operations, scalars.literals_problem(self.schema, document))

    def _variables_problem(
        self, operation: OperationDefinitionNode, variables: Mapping[str, Any]
    ) -> str | None:
        for definition in operation.variable_definitions or ():
            name = definition.variable.name.value
            if name not in variables:
                continue
            kind = type_from_ast(self.schema, definition.type)
            if kind is None or not scalars.holds_text(kind):
                continue  # an unknown type (validation says so), or no text to look at
            problem = scalars.variable_problem(variables[name], kind, f"${name}")  # type: ignore[arg-type]
            if problem is not None:
                return problem
        return None


def _chosen(
    operations: tuple[OperationDefinitionNode, ...], name: str | None
) -> OperationDefinitionNode | str:
    """The operation to run, or why there is none to choose."""
    names = [o.name.value if o.name else None for o in operations]
    if name is not None:
        for operation in operations:
            if operation.name and operation.name.value == name:
                return operation
        return (
            f"operationName {shown(name)} is not the name of an operation in the document;"
            f" expected one of {[n for n in names if n]}."
        )
    if not operations:
        return "The document holds no operation; expected a query, mutation or subscription."
    if len(operations) > 1 and all(names):
        return (
            f"The document holds {len(operations)} operations {names} and the request"
            f" names none; send operationName, one of them."
        )
    # One; or several with an anonymous one, which validation refuses in its own words.
    return operations[0]


def _read_json(text: bytes | str, what: str) -> Any:
    """The JSON value of ``text``, or the 400 answer that says why there is none."""
    try:
        return json.loads(text, parse_constant=_not_a_number, parse_float=_finite)
    except _NotJson as error:
        return error_response(f"{what} {error}")
    except RecursionError:
        return error_response(
            f"{what} is nested too deeply to read (JSON objects and arrays within each"
            f" other); expected at most {MAX_NESTING} levels."
        )
    except ValueError as error:  # not JSON, or not UTF-8
        return error_response(
            f"{what} is not JSON ({error}); expected an object such as {_EXAMPLE}."
        )


class _NotJson(ValueError):
    pass


def _not_a_number(name: str) -> Any:
    raise _NotJson(f"holds {name}, which is not a JSON number; expected finite numbers only.")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJson(
            f"holds the number {shown(text)}, which is beyond what a 64-bit float holds;"
            " expected a finite number (at most about 1.8e308)."
        )
    return value


def _from_query_string(request: Request) -> Any:
    """A GET's ``?query=&variables=&operationName=`` as a body would hold them."""
    params = request.query_params
    payload: dict[str, Any] = {"query": params["query"]}
    if params.get("variables"):
        variables = _read_json(params["variables"], "The variables parameter")
        if isinstance(variables, Response):
            return variables
        payload["variables"] = variables
    if params.get("operationName"):
        payload["operationName"] = params["operationName"]
    return payload


def _json_shown(value: Any) -> str:
    """A value read from JSON, shown as JSON names its constants."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return shown(value)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "string" if isinstance(value, str) else "number"


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


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
