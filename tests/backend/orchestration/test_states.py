"""Parsing and serializing states: names belong to types, results are references only."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from backend.errors import InputError
from backend.orchestration.states import NAMES, TERMINAL, ResultRef, State, StateType

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_the_seed_table() -> None:
    seed = {
        "Scheduled": "SCHEDULED",
        "Late": "SCHEDULED",
        "AwaitingRetry": "SCHEDULED",
        "Pending": "PENDING",
        "Running": "RUNNING",
        "Retrying": "RUNNING",
        "Paused": "PAUSED",
        "Cancelling": "CANCELLING",
        "Cancelled": "CANCELLED",
        "Completed": "COMPLETED",
        "Failed": "FAILED",
        "Crashed": "CRASHED",
        "Cached": "COMPLETED",
        "TimedOut": "FAILED",
    }
    assert {name: t.value for name, t in NAMES.items()} == seed
    assert {t.value for t in TERMINAL} == {"COMPLETED", "CANCELLED", "FAILED", "CRASHED"}


@pytest.mark.parametrize(("name", "state_type"), list(NAMES.items()))
def test_every_name_parses_with_its_type(name: str, state_type: StateType) -> None:
    parsed = State.parse({"type": state_type.value, "name": name}, NOW)
    assert (parsed.type, parsed.name, parsed.timestamp) == (state_type, name, NOW)
    assert parsed.terminal == (state_type in TERMINAL)


def test_a_type_alone_gets_its_default_name() -> None:
    assert State.parse({"type": "COMPLETED"}, NOW).name == "Completed"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ("Running", "'Running' is not an object"),
        ({"type": "DONE"}, "state type 'DONE' is not a state type"),
        ({}, "state type None is not a state type"),
        ({"type": "RUNNING", "name": "Completed"}, "'Completed' does not belong to type RUNNING"),
        ({"type": "SCHEDULED", "name": "Soon"}, "'Soon' does not belong to type SCHEDULED"),
        ({"type": "RUNNING", "colour": "red"}, "unknown fields ['colour']"),
        ({"type": "RUNNING", "message": 3}, "message 3 is not a string"),
        ({"type": "RUNNING", "details": []}, "details [] is not an object"),
        ({"type": "COMPLETED", "result": [1, 2, 3]}, "[1, 2, 3] is not a result reference"),
        (
            {"type": "COMPLETED", "result": {"location": "x", "serializer": "json", "value": 4}},
            "is not a result reference",
        ),
        ({"type": "COMPLETED", "result": {"location": "", "serializer": "json"}}, "location ''"),
    ],
)
def test_malformed_states_name_the_offending_value(data: Any, fragment: str) -> None:
    with pytest.raises(InputError) as error:
        State.parse(data, NOW)
    assert fragment in str(error.value)


def test_serialized_form() -> None:
    state = State.parse(
        {
            "type": "COMPLETED",
            "name": "Completed",
            "message": "done",
            "result": {"location": "s3://bucket/r", "serializer": "pickle"},
            "details": {"k": 1},
        },
        NOW,
    )
    assert state.result == ResultRef("s3://bucket/r", "pickle")
    assert state.serialize() == {
        "type": "COMPLETED",
        "name": "Completed",
        "message": "done",
        "timestamp": "2026-01-01T00:00:00+00:00",
        "result": {"location": "s3://bucket/r", "serializer": "pickle"},
        "details": {"k": 1},
    }
