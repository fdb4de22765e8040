"""The WebSocket side of ``/graphql`` (graphql-transport-ws): what HTTP requests get, too.

Strawberry's handler runs each ``subscribe`` message as an operation of the connection. Two
things an HTTP request gets from ``GraphQLEndpoint`` it would not get on its own:

- The ``Checkpoint``: a subscribe payload that is not a request (a query that is not a
  string, variables nested past the limit, NUL bytes, several operations and no
  ``operationName``) is answered with an ``error`` message naming the value, as over HTTP,
  and the connection stays open.
- A context of its own: Strawberry gives every operation of a connection the one context
  made when it opened, so batch loaders would serve one operation's rows to every later one
  and the row budget would count them all. Each operation gets a fresh ``Context`` that keeps
  only what belongs to the connection: its database, its request and the key it showed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from graphql import GraphQLError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ErrorMessage,
    SubscribeMessage,
)

from backend.api.context import Context
from backend.api.endpoint import Checkpoint
from backend.api.errors import BAD_INPUT


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with the checkpoint in front and a context per operation."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checkpoint: Checkpoint = self.view.checkpoint  # type: ignore[attr-defined]
        self.connection = self.context  # connection_init fills in its params and key

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        payload: Any = message.get("payload")
        problem = self.checkpoint.problem(payload) if self.connection_acknowledged else None
        if problem is not None and message.get("id") not in self.operations:
            error = GraphQLError(problem[0], extensions={"code": BAD_INPUT})
            refusal = ErrorMessage(id=message["id"], type="error", payload=[error.formatted])
            await self.send_message(refusal)
            return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Any) -> None:
        # The base class reads self.context once, synchronously, as it starts the
        # operation: the fresh context set here is the one this operation runs with.
        self.context = dataclasses.replace(
            self.connection, answer_rows=0, over_budget=None, _loaders={}
        )
        await super().run_operation(operation)
