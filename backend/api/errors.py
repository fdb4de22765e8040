"""What a client sees when something goes wrong.

Expected failures (``InputError``: a malformed id, a null in a filter, a negative limit) and
GraphQL's own validation errors reach the client word for word. A database that cannot be
reached is an outage, not a fault: the request is answered 503 with ``Retry-After`` and the
code ``UNAVAILABLE``, so clients retry it (``unavailable_response``). Anything else is a
server fault: it is logged with its traceback, and the client gets "Unexpected error." so no
SQL, path or stack trace leaks into a response.

The database layer raises its outages as ``ConnectionError`` (``DatabaseUnavailable``); this
layer may not import that one, and tells them by the built-in base.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from graphql import GraphQLError
from starlette.responses import JSONResponse
from strawberry.extensions import MaskErrors

from backend.errors import InputError

logger = logging.getLogger("runview.server")

UNAVAILABLE = "UNAVAILABLE"
UNAVAILABLE_MESSAGE = "The database is unavailable; retry in a few seconds."
# What a 503 tells clients to wait: PostgreSQL restarts and fails over in seconds.
RETRY_AFTER_SECONDS = 5


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


class _MaskErrors(MaskErrors):
    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        if not is_unavailable(error):
            return super().anonymise_error(error)
        # One line, not a traceback: during an outage every request says the same.
        logger.warning("answering 503: %s", error.original_error)
        return GraphQLError(
            UNAVAILABLE_MESSAGE,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": UNAVAILABLE},
        )


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
    return JSONResponse(
        {"code": UNAVAILABLE, "message": UNAVAILABLE_MESSAGE},
        status_code=503,
        headers={"retry-after": str(RETRY_AFTER_SECONDS)},
    )
