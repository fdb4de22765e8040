"""``Client`` and ``AsyncClient``: send the SDK's GraphQL documents to runview.

Both share ``BaseClient``, which holds the configuration and does the work on the SDK's own
event loop (``sdk._loop``); they differ only in how the caller waits. That loop is why an
``AsyncClient`` works from any event loop, and a ``Client`` from any thread, including a
thread inside a running event loop (a notebook).

Example::

    from sdk import Client, documents

    client = Client("http://127.0.0.1:4200/graphql")
    run = client.execute(documents.FLOW_RUN, {"id": flow_run_id})["flow_run_by_pk"]
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import orjson
from gql import Client as GQLClient
from gql import GraphQLRequest
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.httpx import HTTPXAsyncTransport
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from sdk import _loop, transports
from sdk.documents import Document
from sdk.exceptions import AccessDenied, ClientError, InvalidInput, ServerError
from sdk.settings import SDKSettings

logger = logging.getLogger("runview.client")

RETRY_STATUS = frozenset({502, 503, 504})
# The server's text for a fault it does not explain (see backend/api/errors.py).
SERVER_FAULT = "Unexpected error."
# Waits between attempts grow exponentially, each a random fraction of its bound so that many
# clients coming back from one outage do not all knock at once; no wait exceeds this.
MAX_WAIT_SECONDS = 5.0


def _transient(error: BaseException) -> bool:
    """A failure that says nothing about the request: the server was not there to answer."""
    if isinstance(error, TransportServerError):
        return error.code in RETRY_STATUS
    return isinstance(error, TransportConnectionFailed | httpx.TransportError)


class BaseClient:
    """Configuration and the request logic; no waiting strategy.

    Args:
        api_url: The server's GraphQL URL; default ``RUNVIEW_API_URL``; unset: embedded.
        api_key: Sent as a Bearer token; default ``RUNVIEW_API_KEY``.
        timeout: Seconds to wait for one answer (an ``httpx.Timeout`` sets connecting apart).
        retry_seconds: How long a document that may be sent again is retried while the
            server cannot be reached or answers 502, 503 or 504 (0: never); default
            ``RUNVIEW_CLIENT_RETRY_SECONDS`` (120). A server restart or a database failover
            within it is ridden through, not reported.
    """

    def __init__(
        self,
        api_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        retry_seconds: float | None = None,
        settings: SDKSettings | None = None,
    ) -> None:
        self.settings = settings or SDKSettings()
        self.api_url = api_url or self.settings.api_url
        self.api_key = api_key or self.settings.api_key
        self.timeout = timeout
        self.retry_seconds = (
            self.settings.client_retry_seconds if retry_seconds is None else retry_seconds
        )
        self._session: Any = None
        self._gql: GQLClient | None = None
        self._connecting = asyncio.Lock()

    @property
    def embedded(self) -> bool:
        return self.api_url is None

    def __repr__(self) -> str:
        where = self.api_url or f"embedded {self.settings.embedded_database_url}"
        return f"{type(self).__name__}({where!r})"

    async def _connect(self) -> Any:
        async with self._connecting:
            if self._session is None:
                headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
                options: dict[str, Any] = {"headers": headers, "timeout": self.timeout}
                url = self.api_url
                if url is None:
                    server = await self._embedded()
                    url, options["transport"] = transports.EMBEDDED_URL, server.transport()
                # orjson: a mapped parent's 10,000 children parse several times faster.
                transport = HTTPXAsyncTransport(url=url, json_deserialize=orjson.loads, **options)
                self._gql = GQLClient(transport=transport)
                self._session = await self._gql.connect_async()
            return self._session

    async def _embedded(self) -> transports.EmbeddedServer:
        database_url = self.settings.embedded_database_url
        try:
            return await transports.embedded(database_url)
        except Exception as error:  # a bad URL, an unreachable or too old database
            raise ClientError(
                f"Cannot open the embedded database {_redact(database_url)!r}: {error}"
            ) from error

    async def _execute(
        self,
        document: Document,
        variables: dict[str, Any] | None,
        retry_seconds: float | None = None,
    ) -> Any:
        """Send ``document``; its ``data``. Runs on the SDK loop."""
        session = await self._connect()
        budget = self.retry_seconds if retry_seconds is None else retry_seconds
        retrying = AsyncRetrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_delay(budget if document.retry else 0),
            wait=wait_random_exponential(multiplier=0.1, max=MAX_WAIT_SECONDS),
            before_sleep=lambda retry_state: self._retrying(retry_state, budget),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    request = GraphQLRequest(document.request, variable_values=variables)
                    return await session.execute(request)
        except TransportQueryError as error:
            raise _server_error(document, error) from None
        except TransportServerError as error:
            retried = self._gave_up(budget) if error.code in RETRY_STATUS else ""
            raise ClientError(
                f"The runview server at {self._where()} answered HTTP {error.code} to"
                f" {document.name}: {error}{retried}."
            ) from error
        except (TransportConnectionFailed, httpx.TransportError) as error:
            raise ClientError(
                f"Cannot reach the runview server at {self._where()} for {document.name}:"
                f" {describe_transport_error(error)}{self._gave_up(budget)}."
            ) from error
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _retrying(self, retry_state: RetryCallState, budget: float) -> None:
        """Say once per outage that requests are being retried (tenacity's before_sleep)."""
        if retry_state.attempt_number != 1:
            return
        error = retry_state.outcome.exception() if retry_state.outcome else None
        logger.warning(
            "the runview server at %s did not answer (%s); retrying for up to %g s",
            self._where(),
            describe_transport_error(error),
            budget,
        )

    def _gave_up(self, budget: float) -> str:
        return f" (retried for {budget:g} s)" if budget else ""

    def _where(self) -> str:
        return repr(self.api_url or "embedded")

    async def _close(self) -> None:
        if self._gql is not None and self._session is not None:
            await self._gql.close_async()
        self._session = self._gql = None


def describe_transport_error(error: BaseException | None) -> str:
    """A transport failure in a few words (httpx's timeouts have no text of their own)."""
    if error is None:
        return "no answer"
    if isinstance(error, TransportServerError):
        return f"HTTP {error.code}"
    cause = error.__cause__ or error  # gql wraps httpx's errors, whose type says most
    return str(error) or type(cause).__name__


def _redact(url: str) -> str:
    """``url`` without its password, if it parses."""
    from sqlalchemy.engine import make_url  # only embedded mode, which loads it anyway

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: the error says so, show it as given
        return url


def _server_error(
    document: Document, error: TransportQueryError
) -> ServerError | InvalidInput | AccessDenied:
    errors = list(error.errors or [])
    messages = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors]
    text = "; ".join(messages) or str(error)
    codes = {e.get("extensions", {}).get("code") for e in errors if isinstance(e, dict)}
    if codes & {"UNAUTHENTICATED", "FORBIDDEN"}:
        return AccessDenied(f"The runview server refused {document.name}: {text}")
    if "INTERNAL" in codes or SERVER_FAULT in messages:  # the text: servers before codes
        return ServerError(
            f"The runview server failed on {document.name}: {text} (its log has the cause).",
            errors,
        )
    return InvalidInput(f"The runview server refused {document.name}: {text}", errors)


class AsyncClient(BaseClient):
    """The client for async programs: ``await client.execute(document, variables)``."""

    async def execute(
        self,
        document: Document,
        variables: dict[str, Any] | None = None,
        *,
        retry_seconds: float | None = None,
    ) -> Any:
        """Send ``document`` with ``variables``; the ``data`` of the answer. ``retry_seconds``
        overrides the client's retry budget for this document.

        Raises:
            InvalidInput: The server refused a value (the message says which).
            ServerError: The server failed.
            ClientError: The server could not be reached.
        """
        return await _loop.run_async(self._execute(document, variables, retry_seconds))

    async def aclose(self) -> None:
        await _loop.run_async(self._close())

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


class Client(BaseClient):
    """The client for ordinary code: ``client.execute(document, variables)`` blocks."""

    def execute(
        self,
        document: Document,
        variables: dict[str, Any] | None = None,
        *,
        retry_seconds: float | None = None,
    ) -> Any:
        """Send ``document`` with ``variables``; the ``data`` of the answer. ``retry_seconds``
        overrides the client's retry budget for this document.

        Raises:
            InvalidInput: The server refused a value (the message says which).
            ServerError: The server failed.
            ClientError: The server could not be reached.
        """
        return _loop.run_sync(self._execute(document, variables, retry_seconds))

    def close(self) -> None:
        _loop.run_sync(self._close())

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


_defaults: dict[tuple[str | None, str | None, str], Client] = {}


def default_client() -> Client:
    """The process's client for the current ``RUNVIEW_*`` settings, made on first use."""
    settings = SDKSettings()
    key = (settings.api_url, settings.api_key, settings.embedded_database_url)
    client = _defaults.get(key)
    if client is None:
        client = _defaults[key] = Client(settings=settings)
    return client
