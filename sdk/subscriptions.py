"""Subscriptions from the SDK: a flow run's events as they commit, sync or async.

Over HTTP the client opens a graphql-transport-ws WebSocket at the server's ``/graphql``
(gql's WebsocketsTransport, the key in ``connection_init``). Embedded, there is no socket: the
in-process server runs the subscription itself (``transports.EmbeddedServer.subscribe``),
through the same schema. Either way the stream runs on the SDK loop, and ``events`` hands its
items to a blocking caller, ``aevents`` to one on any other loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import queue
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from gql import Client as GQLClient
from gql import GraphQLRequest
from gql.transport.exceptions import TransportError, TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from sdk import _loop, documents
from sdk.client import BaseClient
from sdk.exceptions import ClientError, InvalidInput

_END = object()


@dataclass(frozen=True)
class FlowRunEvent:
    """An accepted state of a flow run (``task_run_id`` None) or of one of its task runs."""

    flow_run_id: uuid.UUID
    task_run_id: uuid.UUID | None
    task_slug: str | None
    map_index: int | None
    state: str
    state_type: str
    message: str | None
    timestamp: dt.datetime
    version: int

    @classmethod
    def parse(cls, data: dict[str, Any]) -> FlowRunEvent:
        task_run_id = data["task_run_id"]
        return cls(
            flow_run_id=uuid.UUID(data["flow_run_id"]),
            task_run_id=uuid.UUID(task_run_id) if task_run_id else None,
            task_slug=data["task_slug"],
            map_index=data["map_index"],
            state=data["state"],
            state_type=data["state_type"],
            message=data["message"],
            timestamp=dt.datetime.fromisoformat(data["timestamp"]),
            version=data["version"],
        )


def flow_run_events(client: BaseClient, flow_run_id: uuid.UUID | str) -> Iterator[FlowRunEvent]:
    """The flow run's current state, then each change of it and its task runs, until it
    ends; blocks between events."""
    variables = {"flow_run_id": str(flow_run_id)}
    for data in events(client, documents.FLOW_RUN_EVENTS, variables):
        yield FlowRunEvent.parse(data["flow_run_events"])


async def aflow_run_events(
    client: BaseClient, flow_run_id: uuid.UUID | str
) -> AsyncIterator[FlowRunEvent]:
    """``flow_run_events`` for async code: awaits between events."""
    variables = {"flow_run_id": str(flow_run_id)}
    async for data in aevents(client, documents.FLOW_RUN_EVENTS, variables):
        yield FlowRunEvent.parse(data["flow_run_events"])


class Stream:
    """A subscription's results as they come, for a blocking reader: ``next(timeout)``."""

    def __init__(
        self, client: BaseClient, document: documents.Document, variables: dict[str, Any]
    ) -> None:
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ended = False
        self._running = asyncio.run_coroutine_threadsafe(
            self._pump(client, document, variables), _loop.loop()
        )

    async def _pump(
        self, client: BaseClient, document: documents.Document, variables: dict[str, Any]
    ) -> None:
        try:
            async for data in _stream(client, document, variables):
                self._items.put(data)
            self._items.put(_END)
        except BaseException as error:  # handed to the reader, which raises it
            self._items.put(error)

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next result; None if none came within ``timeout`` seconds.

        Raises:
            StopIteration: the subscription completed.
            ClientError, InvalidInput: it could not start, or was closed.
        """
        if self._ended:
            raise StopIteration
        try:
            item = self._items.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END or isinstance(item, BaseException):
            self._ended = True
            self.close()
        if item is _END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return dict(item)

    def close(self) -> None:
        self._running.cancel()


def events(
    client: BaseClient, document: documents.Document, variables: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """The ``data`` of each result of the subscription ``document``, in this thread."""
    stream = Stream(client, document, variables)
    try:
        while True:
            try:
                item = stream.next()
            except StopIteration:
                return
            if item is not None:
                yield item
    finally:
        stream.close()


async def aevents(
    client: BaseClient, document: documents.Document, variables: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """The ``data`` of each result of the subscription ``document``, on the caller's loop."""
    if _loop.on_loop():
        async for data in _stream(client, document, variables):
            yield data
        return
    here = asyncio.get_running_loop()
    items: asyncio.Queue[Any] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for data in _stream(client, document, variables):
                here.call_soon_threadsafe(items.put_nowait, data)
            here.call_soon_threadsafe(items.put_nowait, _END)
        except BaseException as error:
            here.call_soon_threadsafe(items.put_nowait, error)

    running = asyncio.run_coroutine_threadsafe(pump(), _loop.loop())
    try:
        while (item := await items.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        running.cancel()


async def _stream(
    client: BaseClient, document: documents.Document, variables: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """The subscription's results, on the SDK loop."""
    if client.api_url is None:
        server = await client._embedded()
        async for data in server.subscribe(document.text, variables):
            yield data
        return
    transport = WebsocketsTransport(
        url=_ws_url(client.api_url),
        init_payload={"Authorization": f"Bearer {client.api_key}"} if client.api_key else {},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        connect_timeout=10,
    )
    try:
        async with GQLClient(transport=transport) as session:
            request = GraphQLRequest(document.request, variable_values=variables)
            async for data in session.subscribe(request):
                yield data
    except TransportQueryError as error:
        message = (error.errors or [{}])[0].get("message", str(error))
        raise InvalidInput(f"The runview server refused {document.name}: {message}") from None
    except (TransportError, OSError, TimeoutError) as error:  # refused, or gone
        raise ClientError(
            f"Cannot stream from the runview server at {client.api_url}: {error}"
        ) from None


def _ws_url(api_url: str) -> str:
    """``ws(s)://`` for the ``http(s)://`` GraphQL URL."""
    if api_url.startswith("https://"):
        return "wss://" + api_url.removeprefix("https://")
    return "ws://" + api_url.removeprefix("http://")
