"""A proposed state's result reference: exactly a location and a known serializer, within
bounds; a stored one is read as it was stored. No database."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from backend.errors import InputError
from backend.orchestration.states import (
    MAX_LOCATION_CHARS,
    RESULT_SERIALIZERS,
    ResultRef,
    State,
)
from sdk.results import SERIALIZERS

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def completed(result: Any) -> dict[str, Any]:
    return {"type": "COMPLETED", "result": result}


def test_the_server_knows_the_sdks_serializers() -> None:
    assert sorted(RESULT_SERIALIZERS) == sorted(SERIALIZERS)


@pytest.mark.parametrize(
    "result",
    [
        {"location": "/results/f/t", "serializer": "pickle"},
        {"location": "file:///results/f/t", "serializer": "cloudpickle"},
        {"location": "s3://bucket/runs/f/t", "serializer": "json"},
        {"location": "memory://r/" + "x" * (MAX_LOCATION_CHARS - 11), "serializer": "json"},
    ],
)
def test_a_reference_within_bounds_is_accepted_as_it_came(result: dict[str, str]) -> None:
    state = State.parse(completed(result), NOW)
    assert state.result == ResultRef(result["location"], result["serializer"])
    assert state.serialize()["result"] == result


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ("/results/f/t", "result '/results/f/t' is not a result reference; expected"),
        ({}, "result {} is not a result reference"),
        ({"location": "/r"}, "result {'location': '/r'} is not a result reference"),
        (
            {"location": "/r", "serializer": "json", "data": [1]},
            "is not a result reference; expected {location: <URL>, serializer: <name>}",
        ),
        ({"location": 7, "serializer": "json"}, "result location 7 is not a non-empty string"),
        ({"location": ["/r"], "serializer": "json"}, "location ['/r'] is not a non-empty"),
        ({"location": "", "serializer": "json"}, "result location '' is not a non-empty string"),
        ({"location": "   ", "serializer": "json"}, "result location '   ' is blank"),
        ({"location": "/r", "serializer": None}, "result serializer None is not a non-empty"),
        (
            {"location": "/r", "serializer": "yaml"},
            "result serializer 'yaml' is not a serializer; expected one of"
            " ['cloudpickle', 'json', 'pickle'].",
        ),
        (
            {"location": "/r", "serializer": "Pickle"},
            "result serializer 'Pickle' is not a serializer",
        ),
        (
            {"location": "/" + "x" * MAX_LOCATION_CHARS, "serializer": "pickle"},
            f"is {MAX_LOCATION_CHARS + 1:,} characters, over the limit of"
            f" {MAX_LOCATION_CHARS:,}; expected a path or URL.",
        ),
    ],
)
def test_a_malformed_reference_is_refused_naming_it(result: Any, message: str) -> None:
    with pytest.raises(InputError) as error:
        State.parse(completed(result), NOW)
    assert message in str(error.value)


def test_a_long_location_is_shown_shortened() -> None:
    with pytest.raises(InputError) as error:
        State.parse(completed({"location": "/" + "x" * 10_000, "serializer": "json"}), NOW)
    assert "'/xxxxxxxx" in str(error.value) and len(str(error.value)) < 300


def test_a_stored_reference_reads_as_it_was_stored() -> None:
    # Stored before these limits: still a reference the server can carry (a Cached copy).
    assert ResultRef.parse({"location": "/r", "serializer": "yaml"}) == ResultRef("/r", "yaml")
    with pytest.raises(InputError, match="not a serializer"):
        ResultRef.propose({"location": "/r", "serializer": "yaml"})
