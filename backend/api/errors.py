"""What a client sees when something goes wrong, and what the server logs about it.

Expected failures (``InputError``: a malformed id, a null in a filter, a negative limit) and
GraphQL's own errors (syntax, validation, variable coercion) reach the client word for word.
A database that cannot be reached is an outage, not a fault: the request is answered 503
with ``Retry-After`` and the code ``UNAVAILABLE``, so clients retry it
(``unavailable_response``). Anything else is a server fault: it is logged with its
traceback, and the client gets "Unexpected error." so no SQL, path or stack trace leaks
into a response.

Every error carries ``extensions.code``, which clients branch on (never on the wording):

==================  ==========================================================
``BAD_INPUT``       the request or a value in it is malformed (``InputError``'s default,
                    and every error of graphql-core's own)
``LIMIT_EXCEEDED``  over a limit (``backend.api.limits``)
``UNAUTHENTICATED``, ``FORBIDDEN``  no key, or not enough scope (``backend.api.auth``)
``UNAVAILABLE``     the database cannot be reached; retry
``INTERNAL``        a server fault; its traceback is in the server's log
==================  ==========================================================

Every ``/graphql`` request has an id (``backend.api.endpoint``): the ``x-request-id``
header of its answer, ``extensions.request_id`` of each of its errors, and the prefix of
every line the server logs while answering it. A refused request logs ONE line; a fault
logs its traceback once (Strawberry's ``strawberry.execution`` logger); SQL parameters are
never logged (the engine hides them).

The database layer raises its outages as ``ConnectionError`` (``DatabaseUnavailable``); this
layer may not import that one, and tells them by the built-in base.
"""

from __future__ import annotations

import contextvars
import copy
import json
import logging
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from graphql import GraphQLError
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Scope, Send
from strawberry.extensions import MaskErrors

from backend.errors import BAD_INPUT, InputError

logger = logging.getLogger("runview.server")

INTERNAL = "INTERNAL"
UNAVAILABLE = "UNAVAILABLE"
UNAVAILABLE_MESSAGE = "The database is unavailable; retry in a few seconds."
FAULT_MESSAGE = "Unexpected error."
# What a 503 tells clients to wait: PostgreSQL restarts and fails over in seconds.
RETRY_AFTER_SECONDS = 5
_JSON_TYPES = ("application/json", "application/graphql-response+json")
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# A logged message is cut here: one line, not the 10 MB value a client sent.
_LOGGED_CHARS = 300

# The id of the request being answered (set by the endpoint for each request).
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "runview_request_id", default=None
)


def is_unavailable(error: GraphQLError) -> bool:
    """Whether ``error`` says the database could not be reached (so a retry may succeed)."""
    return isinstance(error.original_error, ConnectionError)


def is_unexpected(error: GraphQLError) -> bool:
    """Whether ``error`` is a server fault rather than a verdict on the client's input or an
    outage of the database."""
    original = error.original_error
    return original is not None and not isinstance(
        original, InputError | GraphQLError | ConnectionError
    )


def code_of(error: GraphQLError) -> str:
    """The ``extensions.code`` of an error not masked: its own, its ``InputError``'s, or
    ``BAD_INPUT`` for graphql-core's verdicts on the document and its variables."""
    code = (error.extensions or {}).get("code")
    if isinstance(code, str):
        return code
    original = error.original_error
    return original.code if isinstance(original, InputError) else BAD_INPUT


def _with_extensions(error: GraphQLError, message: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error if message == error.message else None,
        extensions={**(error.extensions or {}), **extensions},
    )


class _MaskErrors(MaskErrors):
    _told = False  # whether this request's outage is logged (one line, not one per error)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        if not is_unavailable(error):
            return _with_extensions(error, FAULT_MESSAGE, code=INTERNAL)
        if not self._told:
            # One line, not a traceback: during an outage every request says the same.
            logger.warning("answering 503: %s", error.original_error)
            self._told = True
        return _with_extensions(error, UNAVAILABLE_MESSAGE, code=UNAVAILABLE)

    def on_operation(self) -> Iterator[None]:
        try:
            yield from super().on_operation()
        except GraphQLError as error:
            # Raised, not returned, before execution (a syntax error from ParserCache, a
            # limit): Strawberry answers it as it is, so it gets its code here.
            if isinstance((error.extensions or {}).get("code"), str):
                raise
            raise _with_extensions(error, error.message, code=code_of(error)) from None
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if errors:
            # New errors, not the old ones changed: ValidationCache shares its errors
            # between the requests that send the same document.
            result.errors = [  # type: ignore[union-attr]
                error
                if isinstance((error.extensions or {}).get("code"), str)
                else _with_extensions(error, error.message, code=code_of(error))
                for error in errors
            ]


def mask_errors() -> MaskErrors:
    return _MaskErrors(should_mask_error=lambda e: is_unexpected(e) or is_unavailable(e))


def answers_unavailable(results: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> bool:
    """Whether a GraphQL response (or a batch of them) holds an ``UNAVAILABLE`` error."""
    for result in [results] if isinstance(results, Mapping) else results:
        for error in result.get("errors") or ():
            if (error.get("extensions") or {}).get("code") == UNAVAILABLE:
                return True
    return False


def unavailable_response() -> JSONResponse:
    """503 with ``Retry-After`` and a body that says why.

    The body is deliberately not a GraphQL response: GraphQL clients (gql among them) take
    one with ``errors`` for the server's verdict on the request, and a 5xx without one for
    a failure to retry.
    """
    body: dict[str, Any] = {"code": UNAVAILABLE, "message": UNAVAILABLE_MESSAGE}
    if (request_id := REQUEST_ID.get()) is not None:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=503, headers={"retry-after": str(RETRY_AFTER_SECONDS)})


def error_response(
    message: str, status: int = 400, code: str = BAD_INPUT, **extensions: Any
) -> JSONResponse:
    """An answer of one error and no data, for a request refused before any execution.

    400 says the request itself is malformed (GraphQL over HTTP: not JSON, not an object,
    no query, no operation to run); 200 is a verdict on a value in it, as graphql-core
    answers a variable it cannot coerce.
    """
    error = {"message": message, "extensions": {"code": code, **extensions}}
    body: dict[str, Any] = (
        {"errors": [error]} if status != 200 else {"data": None, "errors": [error]}
    )
    return JSONResponse(body, status_code=status)


def stamped(body: bytes, request_id: str) -> tuple[bytes, list[dict[str, Any]]] | None:
    """A JSON answer with ``request_id`` in the extensions of each of its errors (a 503's
    body: at its top), and those errors; ``None`` if it holds no error."""
    if b'"errors"' not in body and b'"code"' not in body:
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    errors = answer.get("errors")
    if isinstance(errors, list) and errors:
        for error in errors:
            if isinstance(error, dict):
                error["extensions"] = {**(error.get("extensions") or {}), "request_id": request_id}
        found = [e for e in errors if isinstance(e, dict)]
    elif isinstance(answer.get("code"), str):  # not GraphQL-shaped: unavailable_response
        answer["request_id"] = request_id
        found = [answer]
    else:
        return None
    return json.dumps(answer, separators=(",", ":")).encode(), found


def log_answer(status: int, errors: list[dict[str, Any]]) -> None:
    """The one line a refused request logs (the request id is prefixed by the filter).

    A fault has logged its traceback already, once, and an outage its reason: a second
    line would say no more.
    """
    codes = [str((e.get("extensions") or {}).get("code", e.get("code"))) for e in errors]
    if INTERNAL in codes or UNAVAILABLE in codes:
        return
    first = " ".join(str(errors[0].get("message", "")).split())
    if len(first) > _LOGGED_CHARS:
        first = first[:_LOGGED_CHARS] + "..."
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    codes_text = ", ".join(dict.fromkeys(codes))
    logger.info("answered HTTP %d, %s: %s%s", status, codes_text, first, more)


def request_id_of(scope: Scope) -> str:
    """The request's id: the client's ``x-request-id`` if it is sane, else a new one."""
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            text = value.decode("latin-1")
            if _SANE_REQUEST_ID.fullmatch(text):
                return text
    return secrets.token_hex(8)


class Answering:
    """``send`` that puts the request id in the answer: its header, and the extensions of
    each error of a JSON answer; and logs the one line of an answer with errors."""

    def __init__(self, send: Send, request_id: str) -> None:
        self.send = send
        self.request_id = request_id
        self.started = False
        self._start: Message | None = None  # held until the body shows any errors

    async def respond(self, response: Response, scope: Scope) -> None:
        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, nothing, self)

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), (b"x-request-id", self.request_id.encode())]
            self._start = {**message, "headers": headers}
            return
        start, self._start = self._start, None
        if start is not None and message["type"] == "http.response.body":
            body = message.get("body", b"")
            if (
                not message.get("more_body")
                and _is_json(start)
                and (start["status"] != 200 or b'"errors"' in body)
            ):
                answer = stamped(body, self.request_id)
                if answer is not None:
                    body, errors = answer
                    start = {**start, "headers": _with_length(start["headers"], len(body))}
                    message = {**message, "body": body}
                    log_answer(start["status"], errors)
        if start is not None:
            self.started = True
            await self.send(start)
        await self.send(message)


def _is_json(start: Message) -> bool:
    for key, value in start.get("headers", ()):
        if key.lower() == b"content-type":
            return value.split(b";")[0].strip().decode("latin-1").lower() in _JSON_TYPES
    return False


def _with_length(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    return [*kept, (b"content-length", str(length).encode())]


class _RequestIds(logging.Filter):
    """Prefixes a record logged while a request is answered with that request's id."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = REQUEST_ID.get()
        if request_id is not None and getattr(record, "request_id", None) is None:
            record.request_id = request_id
            record.msg, record.args = f"request {request_id}: {record.getMessage()}", None
        return True


# The loggers of a request's faults: the compiled paths' and the app's, and Strawberry's
# (schema.process_errors logs a fault's traceback there).
for _name in ("runview.server", "strawberry.execution"):
    logging.getLogger(_name).addFilter(_RequestIds())


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging configuration, plus the server's own loggers at ``level`` on
    uvicorn's handler (uvicorn configures only its own; the others' INFO lines would be
    dropped), with a fault's traceback cut to its first and last frames (a RecursionError's
    is a thousand). For ``uvicorn.run(app, log_config=log_config())``."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["runview"] = {
        "()": f"{__name__}.bounded_formatter",
        "fmt": "%(levelprefix)s %(message)s",
    }
    config["handlers"]["runview"] = {
        "formatter": "runview",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    for name in ("runview", "strawberry"):
        config["loggers"][name] = {
            "handlers": ["runview"],
            "level": level.upper(),
            "propagate": False,
        }
    return config


def bounded_formatter(fmt: str, keep_lines: int = 60) -> logging.Formatter:
    """uvicorn's formatter, with a traceback over ``keep_lines`` lines cut in the middle."""
    from uvicorn.logging import DefaultFormatter

    class Bounded(DefaultFormatter):
        def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
            lines = super().formatException(ei).splitlines()
            if len(lines) <= keep_lines:
                return "\n".join(lines)
            half = keep_lines // 2
            cut = f"  [... {len(lines) - keep_lines} lines of the traceback left out ...]"
            return "\n".join([*lines[:half], cut, *lines[-half:]])

    return Bounded(fmt)
