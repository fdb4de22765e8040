"""The per-request context: the database handle and the request's batch loaders.

Loaders live for one request, so their caches never serve stale rows to another client. Each
(relationship, arguments) pair gets its own loader: the task runs of 500 flow runs filtered the
same way are one SQL statement, whatever the nesting.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError
from strawberry.dataloader import DataLoader

from backend import models
from backend.api.auth import OPEN, Access
from backend.models import Database, Relationship

# Parents per statement. Keeps the IN list inside SQLite's bound-parameter limit.
MAX_BATCH = 10_000


@dataclass
class Context:
    db: Database
    request: Any = None
    # What the request's key may do (backend.api.auth); ``None`` until a WebSocket's
    # connection_init payload (which Strawberry puts in connection_params) shows a key.
    access: Access | None = OPEN
    connection_params: Any = None
    # Rows the executor's list fields have answered so far, and the error once that is
    # over the request's budget (backend.api.limits.answered).
    answer_rows: int = 0
    over_budget: GraphQLError | None = None
    _loaders: dict[Hashable, DataLoader[Any, list[Any]]] = field(default_factory=dict)

    async def related(self, relationship: Relationship, key: Any, **arguments: Any) -> list[Any]:
        """The rows related to one parent, batched with every other parent of this request."""
        cache_key = (relationship.source, relationship.name, _freeze(arguments))
        loader = self._loaders.get(cache_key)
        if loader is None:

            async def load(keys: Sequence[Any]) -> list[list[Any]]:
                async with self.db.connect() as conn:
                    groups = await models.load_related(conn, relationship, keys, **arguments)
                return [groups.get(key, []) for key in keys]

            loader = self._loaders[cache_key] = DataLoader(load_fn=load, max_batch_size=MAX_BATCH)
        return await loader.load(key)


def _freeze(arguments: dict[str, Any]) -> str:
    # Called once per parent row: skip serializing when there is nothing to tell apart
    # (every to-one relationship, and list relationships without arguments).
    if not any(value is not None for value in arguments.values()):
        return ""
    return json.dumps(arguments, sort_keys=True, default=str)
