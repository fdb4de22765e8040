"""Serializers turn a result into bytes and back: pickle (default), cloudpickle, json."""

from __future__ import annotations

import json
import pickle
from typing import Any, Protocol

from sdk.exceptions import InvalidInput


class Serializer(Protocol):
    name: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class PickleSerializer:
    """Any picklable value. Reading runs code from the stored bytes: read only results you
    (or your flows) wrote."""

    name = "pickle"

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)  # noqa: S301 - results are the user's own data


class CloudpickleSerializer(PickleSerializer):
    """Like pickle, and also lambdas, closures and classes defined in ``__main__``."""

    name = "cloudpickle"

    def dumps(self, value: Any) -> bytes:
        import cloudpickle

        return bytes(cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


class JSONSerializer:
    """JSON values only; readable by any language."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


SERIALIZERS: dict[str, Serializer] = {
    s.name: s for s in (PickleSerializer(), CloudpickleSerializer(), JSONSerializer())
}


def get_serializer(name: str) -> Serializer:
    try:
        return SERIALIZERS[name]
    except KeyError:
        raise InvalidInput(
            f"{name!r} is not a serializer; expected one of {sorted(SERIALIZERS)}."
        ) from None
