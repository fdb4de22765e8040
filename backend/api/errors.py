"""What a client sees when something goes wrong.

Expected failures (``InputError``: a malformed id, a null in a filter, a negative limit) and
GraphQL's own validation errors reach the client word for word. Anything else is a server
fault: it is logged with its traceback, and the client gets "Unexpected error." so no SQL,
path or stack trace leaks into a response.
"""

from __future__ import annotations

from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from backend.errors import InputError


def is_unexpected(error: GraphQLError) -> bool:
    """Whether ``error`` is a server fault rather than a verdict on the client's input."""
    original = error.original_error
    return original is not None and not isinstance(original, InputError | GraphQLError)


def mask_errors() -> MaskErrors:
    return MaskErrors(should_mask_error=is_unexpected)
