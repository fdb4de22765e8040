"""The state constructors a flow returns to decide its own final state, and how a State
pickles."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import pytest

import sdk
from sdk import NOT_LOADED, Cancelled, Completed, Failed, FlowRunView, State, TimedOut, flow
from sdk.exceptions import RunCancelled, RunFailed
from tests.sdk.conftest import CountingClient


def test_the_state_constructors_are_public() -> None:
    assert {"Completed", "Failed", "Cancelled", "TimedOut"} <= set(sdk.__all__)


@pytest.mark.parametrize(
    ("constructor", "type_", "name"),
    [
        (Completed, "COMPLETED", "Completed"),
        (Failed, "FAILED", "Failed"),
        (Cancelled, "CANCELLED", "Cancelled"),
        (TimedOut, "FAILED", "TimedOut"),
    ],
)
def test_each_constructor_makes_its_state(
    constructor: Callable[..., State], type_: str, name: str
) -> None:
    state = constructor("because")
    assert (state.type, state.name, state.message) == (type_, name, "because")
    assert state.is_final()


def returning(state: State, name: str, client: CountingClient) -> Any:
    """A flow ``name`` that returns ``state``."""
    return flow(lambda: state, name=name, client=client)


def test_a_flow_that_returns_a_state_ends_in_it(client: CountingClient) -> None:
    returned = {
        "completes": Completed("all 12 files present", data=12),
        "fails": Failed("3 of 12 files are missing"),
        "cancels": Cancelled("nothing arrived today"),
        "times_out": TimedOut("no upload by 06:00"),
    }
    for flow_name, state in returned.items():
        final = returning(state, flow_name, client)(return_state=True)
        recorded = FlowRunView.from_flow_run_id(final.flow_run_id, client=client).state
        for seen in (final, recorded):
            assert (seen.type, seen.name, seen.message) == (state.type, state.name, state.message)

    # Called for its data: a returned state's own, or its failure raised.
    assert returning(returned["completes"], "completes", client)() == 12
    with pytest.raises(RunFailed, match="3 of 12 files are missing") as failed:
        returning(returned["fails"], "fails", client)()
    assert failed.value.state is not None and failed.value.state.name == "Failed"
    with pytest.raises(RunCancelled, match="nothing arrived today"):
        returning(returned["cancels"], "cancels", client)()


def test_a_pickled_state_keeps_the_not_loaded_sentinel() -> None:
    state = Completed("done")
    loaded = pickle.loads(pickle.dumps(state))
    assert loaded == state and loaded.data is NOT_LOADED
    assert pickle.loads(pickle.dumps(NOT_LOADED)) is NOT_LOADED
