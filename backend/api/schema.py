"""The GraphQL schema: root types merged from one module per domain."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import create_type, merge_types
from strawberry.utils.logging import StrawberryLogger

from backend.api import flow_runs, flows, logs, subscriptions, task_runs
from backend.api.auth import ScopeCheck
from backend.api.errors import is_unexpected, mask_errors
from backend.api.limits import is_limit_error
from backend.api.measure import LimitsExtension
from backend.api.scalars import SCALARS
from backend.api.tables import TYPES

Query = create_type("Query", TYPES.root_fields(), description="Read any table, Hasura style.")
Mutation = merge_types(
    "Mutation", (flows.Mutation, flow_runs.Mutation, task_runs.Mutation, logs.Mutation)
)


class _Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        # A client's bad input is answered in the response; only server faults are logged
        # (a statement stopped at the statement timeout is a limit the request went over).
        for error in errors:
            if is_unexpected(error) and not is_limit_error(error):
                StrawberryLogger.error(error, execution_context)


schema = _Schema(
    query=Query,
    mutation=Mutation,
    subscription=subscriptions.Subscription,
    config=StrawberryConfig(auto_camel_case=False, scalar_map=SCALARS),
    # Clients send the same few documents over and over (the SDK's are fixed): parsing and
    # validating each once, not per request, saves about 1 ms a request (bench B2).
    extensions=[
        ScopeCheck,
        # Before ValidationCache: a document over the limits is not validated at all.
        LimitsExtension,
        mask_errors,
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
    ],
)


def sdl() -> str:
    """The schema in SDL, as committed in schema.graphql."""
    return schema.as_str() + "\n"
