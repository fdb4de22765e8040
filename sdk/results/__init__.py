"""Task results on the user's own storage; the backend keeps only where they are."""

from sdk.results.serializers import SERIALIZERS, Serializer, get_serializer
from sdk.results.storage import (
    ResultRef,
    ResultStorage,
    aread_results,
    read_result,
    read_results,
)

__all__ = [
    "SERIALIZERS",
    "ResultRef",
    "ResultStorage",
    "Serializer",
    "aread_results",
    "get_serializer",
    "read_result",
    "read_results",
]
