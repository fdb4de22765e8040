"""How much one request may ask for, and the one error that says it asked for too much.

Every limit is a ``RUNVIEW_*`` setting (``backend.settings``, ``Limits``). A request over one
gets ``LimitExceeded``: a GraphQL error with the code ``LIMIT_EXCEEDED`` that names the limit,
its value and its setting, and no data. Each check runs where it is cheapest, before the work
it guards:

==================  ========================================================================
body size           ``limit_body``, in front of ``/graphql``: 413 before the JSON is parsed
depth, aliases,     ``measure.check_document``, after parsing and before graphql-core's
fields              validation (which is quadratic in the fields of one selection)
batch sizes, list   ``measure.check_request``, on the raw JSON variables and the literals,
lengths, rows,      before graphql-core coerces them (100,000 proposals are refused without
cost                the seconds their coercion takes) and so before any SQL
statement timeout   the database stops the statement (``backend.database.engine``); the
                    request is answered LIMIT_EXCEEDED and never retried another way
answer rows         ``answered``, as the executor's list fields answer: the rows it would
                    build objects of in the event loop (the cost cannot see rows fetched
                    once and answered under each of thousands of parents)
==================  ========================================================================

The compiled read path (``backend.api.compiled``) calls both checks itself and raises the
error, which the endpoint answers with ``refusal``; the compiled state path
(``compiled_states``) hands a batch over its limit to the executor, as any input the
executor refuses. The executor's operations go through ``measure.LimitsExtension``. Both
paths thus refuse the same requests with the same words, and neither tries again what the
other refused or what the statement timeout stopped. A list field without ``limit`` answers
``default_rows`` rows at most, on both paths.

The cost of a query is an estimate made before any SQL: the most rows one chain of nested
list fields may return, the product of their ``limit`` arguments (``default_rows`` where a
list has none). ``{ flow_run { task_runs { states { state } } } }`` is 100,000³ with the
defaults, the most ``max_cost`` allows; a fourth nested list needs limits.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope

from backend.settings import Settings

LIMIT_EXCEEDED = "LIMIT_EXCEEDED"

_Row = TypeVar("_Row")


@dataclasses.dataclass(frozen=True)
class Limits:
    """The limits one server applies; each field is the ``Settings`` field of that name."""

    max_depth: int
    max_aliases: int
    max_fields: int
    default_rows: int
    max_rows: int
    max_cost: int
    max_answer_rows: int
    max_list_items: int
    max_states_per_request: int
    max_logs_per_request: int
    max_mapped_children: int
    max_body_bytes: int
    statement_timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Limits:
        settings = settings or Settings()
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})


class LimitExceeded(GraphQLError):
    """The request asks for more than ``limit`` allows; nothing of it was executed.

    A ``GraphQLError``, so the executor reports it as it is; raised by the body check or a
    compiled path, the endpoint answers it with ``refusal``.
    """

    def __init__(self, limit: str, value: float, message: str, status: int = 200) -> None:
        super().__init__(
            message,
            extensions={
                "code": LIMIT_EXCEEDED,
                "limit": limit,
                "value": value,
                "setting": setting_of(limit),
            },
        )
        self.status = status


def setting_of(limit: str) -> str:
    """The environment variable that sets ``limit``."""
    return "RUNVIEW_" + limit.upper()


def over(limit: str, value: float, what: str, advice: str, status: int = 200) -> LimitExceeded:
    """``LimitExceeded`` worded "<what> is over the limit of <value> (<setting>); <advice>."."""
    number = f"{value:g}" if isinstance(value, float) else str(value)
    message = f"{what} is over the limit of {number} ({setting_of(limit)}); {advice}."
    return LimitExceeded(limit, value, message, status)


async def refusal(request: Request, error: Exception) -> Response:
    """The response to a ``LimitExceeded`` raised outside the executor: shaped as the
    executor answers one (no data), 413 for a body too large, 200 otherwise."""
    assert isinstance(error, LimitExceeded)
    return JSONResponse({"data": None, "errors": [error.formatted]}, status_code=error.status)


def limits_of(context: Any) -> Limits | None:
    """The limits of the app serving ``context``'s request (``None``: not served by an app,
    as when a test or tool calls ``schema.execute`` itself)."""
    app = getattr(getattr(context, "request", None), "app", None)
    return getattr(getattr(app, "state", None), "limits", None)


def statement_timeout(limits: Limits | None, error: BaseException | None) -> LimitExceeded:
    """The error for a statement the database stopped at the statement timeout."""
    seconds = limits.statement_timeout_seconds if limits else getattr(error, "seconds", 0.0)
    limit = "statement_timeout_seconds"
    message = (
        f"A statement of this request ran longer than the statement timeout of {seconds:g} s"
        f" ({setting_of(limit)}) and was stopped; ask for fewer rows (limit, where) or fewer"
        " nested lists."
    )
    return LimitExceeded(limit, seconds, message)


def is_limit_error(error: GraphQLError) -> bool:
    """Whether ``error`` is a limit the request went over (not a server fault to log)."""
    return isinstance(error, LimitExceeded) or isinstance(error.original_error, TimeoutError)


def answered(context: Any, rows: list[_Row], limit: int | None) -> list[_Row]:
    """The executor's side of the row limits, for the rows one list field answers.

    ``rows`` are cut to ``default_rows`` when the field has no ``limit`` (the compiled path
    cuts them in SQL), then counted against the request's ``max_answer_rows``: the executor
    builds an object of every row in the event loop, so rows it only fetched once can still
    make an answer of millions (every task run, each with every task run of its flow run).
    Past the budget every list answers empty, which costs nothing, and ``LimitsExtension``
    answers the request with ``context.over_budget`` and no data. (Raising here instead
    would have graphql-core locate and collect an error for each of thousands of lists.)
    """
    limits = limits_of(context)
    if limits is None:
        return rows
    if limit is None and len(rows) > limits.default_rows:
        rows = rows[: limits.default_rows]
    context.answer_rows += len(rows)
    if context.answer_rows <= limits.max_answer_rows:
        return rows
    if context.over_budget is None:
        what = f"An answer of more than {limits.max_answer_rows} rows"
        advice = "ask for fewer rows (limit, where) or fewer nested lists"
        context.over_budget = over("max_answer_rows", limits.max_answer_rows, what, advice)
    return []


def limit_body(scope: Scope, receive: Receive) -> Receive:
    """``receive`` that refuses a request body over ``max_body_bytes`` (413): at once when
    its Content-Length says so, else as soon as that many bytes have arrived."""
    limits = getattr(getattr(scope.get("app"), "state", None), "limits", None)
    if scope["type"] != "http" or limits is None:
        return receive
    maximum = limits.max_body_bytes
    declared = dict(scope["headers"]).get(b"content-length", b"")
    if declared.isdigit() and int(declared) > maximum:
        raise _body_too_large(int(declared), maximum)
    received = 0

    async def bounded() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > maximum:
            raise _body_too_large(received, maximum)
        return message

    return bounded


def _body_too_large(size: int, maximum: int) -> LimitExceeded:
    what = f"A request body of {size} bytes"
    return over("max_body_bytes", maximum, what, "send less in one request", 413)


__all__ = [
    "LIMIT_EXCEEDED",
    "LimitExceeded",
    "Limits",
    "answered",
    "is_limit_error",
    "limit_body",
    "limits_of",
    "over",
    "refusal",
    "setting_of",
    "statement_timeout",
]
