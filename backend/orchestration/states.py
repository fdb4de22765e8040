"""Run states: their types, their canonical names, and their serialized form.

A state has a *type*, which the rules reason about, and a *name*, which people read: a task
that retries is RUNNING both times, named Running and then Retrying. The twelve classic names
(Scheduled, Late, AwaitingRetry, Pending, Running, Retrying, Paused, Cancelling, Cancelled,
Completed, Failed, Crashed) are joined by Cached (a COMPLETED that reused an earlier result)
and TimedOut (a FAILED).

Serialized form (what the API sends and stores)::

    {"type": "COMPLETED", "name": "Completed", "message": None,
     "timestamp": "2021-05-12T18:00:01.696849+00:00",
     "result": {"location": "file:///...", "serializer": "pickle"}, "details": {}}

``result`` is a reference to data on the user's storage, never the data itself: exactly a
non-empty ``location`` of at most ``MAX_LOCATION_CHARS`` and one of ``RESULT_SERIALIZERS``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import orjson

from backend.errors import InputError


class StateType(StrEnum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CRASHED = "CRASHED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset(
    {StateType.COMPLETED, StateType.CANCELLED, StateType.FAILED, StateType.CRASHED}
)

# Every canonical name and the type it belongs to.
NAMES: dict[str, StateType] = {
    "Scheduled": StateType.SCHEDULED,
    "Late": StateType.SCHEDULED,
    "AwaitingRetry": StateType.SCHEDULED,
    "Pending": StateType.PENDING,
    "Running": StateType.RUNNING,
    "Retrying": StateType.RUNNING,
    "Paused": StateType.PAUSED,
    "Cancelling": StateType.CANCELLING,
    "Cancelled": StateType.CANCELLED,
    "Completed": StateType.COMPLETED,
    "Cached": StateType.COMPLETED,
    "Failed": StateType.FAILED,
    "TimedOut": StateType.FAILED,
    "Crashed": StateType.CRASHED,
}

# The name a state gets when a proposal gives only its type.
DEFAULT_NAMES: dict[StateType, str] = {
    StateType.SCHEDULED: "Scheduled",
    StateType.PENDING: "Pending",
    StateType.RUNNING: "Running",
    StateType.PAUSED: "Paused",
    StateType.CANCELLING: "Cancelling",
    StateType.CANCELLED: "Cancelled",
    StateType.COMPLETED: "Completed",
    StateType.FAILED: "Failed",
    StateType.CRASHED: "Crashed",
}

_FIELDS = {"type", "name", "message", "timestamp", "result", "details"}
# The serializers the SDK reads results with (sdk/results/serializers.py; the server does not
# import the SDK). A reference naming another is a mistake no reader could load.
RESULT_SERIALIZERS = frozenset({"pickle", "cloudpickle", "json"})
# A result location is a path or URL: the longest path Linux opens is 4,096 bytes.
MAX_LOCATION_CHARS = 4096
# A proposed state, as JSON, may be this large: a state is a few hundred bytes; a message
# holding a whole log file belongs in the logs.
MAX_STATE_BYTES = 1_000_000


def parse_cache_expiration(value: Any) -> dt.datetime:
    """``details.cache_expiration``: when a Completed run's result stops being reusable."""
    if not isinstance(value, str):
        raise InputError(
            f"state details cache_expiration {value!r} is not a string; expected an ISO 8601"
            " timestamp with a UTC offset, such as '2026-12-01T12:00:00+00:00'."
        )
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        why = "has no UTC offset" if when is not None else "is not a timestamp"
        raise InputError(
            f"state details cache_expiration {value!r} {why}; expected an ISO 8601 timestamp"
            " with a UTC offset, such as '2026-12-01T12:00:00+00:00'."
        )
    return when


def check_storable(data: Any, what: str = "state") -> None:
    """Refuse a JSON value the database cannot store, naming where the bad part is: a NUL
    character (PostgreSQL's text and jsonb have none), a lone surrogate (not UTF-8), or more
    than ``MAX_STATE_BYTES`` in all. One serialization when nothing is wrong."""
    try:
        text = orjson.dumps(data)
    except TypeError:  # a lone surrogate, or an integer orjson refuses: look closer
        text = None
    if text is not None and len(text) > MAX_STATE_BYTES:
        raise InputError(
            f"{what} is {len(text):,} bytes as JSON, over the limit of {MAX_STATE_BYTES:,}."
        )
    if text is None or b"\\u0000" in text:
        _find_unstorable(data, what)


def _find_unstorable(value: Any, where: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise InputError(
                f"{where} {_shorten(value)} holds a NUL character (\\x00), which cannot be"
                " stored; remove or replace it."
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise InputError(
                f"{where} {_shorten(value)} holds a lone surrogate"
                f" ({value[error.start]!r} at {error.start}), which is not UTF-8; remove or"
                " replace it."
            ) from None
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _find_unstorable(key, f"a key of {where}")
            _find_unstorable(item, f"{where}.{key}" if isinstance(key, str) else where)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _find_unstorable(item, f"{where}[{i}]")


def _shorten(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


@dataclass(frozen=True)
class ResultRef:
    """Where a run's result lives on the user's storage, and how it was serialized."""

    location: str
    serializer: str

    @classmethod
    def parse(cls, data: Any) -> ResultRef:
        if not isinstance(data, Mapping) or set(data) != {"location", "serializer"}:
            raise InputError(
                f"result {data!r} is not a result reference; expected"
                " {location: <URL>, serializer: <name>} and nothing else (the data itself"
                " stays on your storage)."
            )
        location, serializer = data["location"], data["serializer"]
        if not isinstance(location, str) or not location:
            raise InputError(f"result location {location!r} is not a non-empty string.")
        if not isinstance(serializer, str) or not serializer:
            raise InputError(f"result serializer {serializer!r} is not a non-empty string.")
        return cls(location, serializer)

    @classmethod
    def propose(cls, data: Any) -> ResultRef:
        """A reference a proposed state carries: ``parse``, and within the limits.

        Stored references are read with ``parse`` alone, so one stored before a limit
        existed still reads.
        """
        ref = cls.parse(data)
        if not ref.location.strip():
            raise InputError(f"result location {ref.location!r} is blank; expected a path or URL.")
        if len(ref.location) > MAX_LOCATION_CHARS:
            raise InputError(
                f"result location {_shorten(ref.location)} is {len(ref.location):,} characters,"
                f" over the limit of {MAX_LOCATION_CHARS:,}; expected a path or URL."
            )
        if ref.serializer not in RESULT_SERIALIZERS:
            raise InputError(
                f"result serializer {_shorten(ref.serializer)} is not a serializer; expected"
                f" one of {sorted(RESULT_SERIALIZERS)}."
            )
        return ref

    def serialize(self) -> dict[str, str]:
        return {"location": self.location, "serializer": self.serializer}


@dataclass(frozen=True)
class State:
    type: StateType
    name: str
    timestamp: dt.datetime
    message: str | None = None
    result: ResultRef | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    # When a SCHEDULED state is due (AwaitingRetry: the next attempt). None: now.
    scheduled_time: dt.datetime | None = None

    @property
    def terminal(self) -> bool:
        return self.type.terminal

    def renamed(self, name: str, **changes: Any) -> State:
        """The same state under another canonical name of its type (Retrying, Late...)."""
        if NAMES.get(name) is not self.type:
            raise ValueError(f"{name!r} is not a name of type {self.type}")
        return replace(self, name=name, **changes)

    @classmethod
    def parse(cls, data: Any, now: dt.datetime) -> State:
        """Read a proposed state; raise ``InputError`` naming what is wrong with it.

        ``timestamp`` is the server's ``now``: a client's clock does not order the history.
        """
        if not isinstance(data, Mapping):
            raise InputError(f"state {data!r} is not an object; expected {{type, name, ...}}.")
        check_storable(data)
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            raise InputError(
                f"state has unknown fields {unknown!r}; expected some of {sorted(_FIELDS)}."
            )
        raw_type = data.get("type")
        try:
            state_type = StateType(str(raw_type))
        except ValueError:
            raise InputError(
                f"state type {raw_type!r} is not a state type; expected one of"
                f" {[t.value for t in StateType]}."
            ) from None
        name = data.get("name") or DEFAULT_NAMES[state_type]
        if NAMES.get(name) is not state_type:
            names = sorted(n for n, t in NAMES.items() if t is state_type)
            raise InputError(
                f"state name {name!r} does not belong to type {state_type.value}; expected one"
                f" of {names}."
            )
        message = data.get("message")
        if message is not None and not isinstance(message, str):
            raise InputError(f"state message {message!r} is not a string.")
        details = data.get("details")
        details = {} if details is None else details
        if not isinstance(details, Mapping):
            raise InputError(f"state details {details!r} is not an object.")
        if "cache_expiration" in details:
            parse_cache_expiration(details["cache_expiration"])
        result = data.get("result")
        return cls(
            type=state_type,
            name=name,
            timestamp=now,
            message=message,
            result=None if result is None else ResultRef.propose(result),
            details=dict(details),
        )

    def serialize(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": self.type.value,
            "name": self.name,
            "message": self.message,
            "timestamp": self.timestamp.isoformat(),
            "result": self.result.serialize() if self.result else None,
            "details": dict(self.details),
        }
        if self.scheduled_time is not None:
            data["details"]["scheduled_time"] = self.scheduled_time.isoformat()
        return data
