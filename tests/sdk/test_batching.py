"""A flow run's StateBatcher against a real server: concurrent proposers share requests, and
the wait for the proposers just answered never holds a lone one."""

from __future__ import annotations

import concurrent.futures
import time

import pytest

from sdk.runtime import batching
from sdk.runtime.batching import StateBatcher
from tests.sdk.conftest import CountingClient, Recorder

pytestmark = [
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
    pytest.mark.parametrize("client", ["http"], indirect=True),
]


def test_a_lone_proposer_is_never_kept_waiting(
    client: CountingClient, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A minute of waiting per request would show: one proposal answered, one arrives, so
    # the batcher never waits for more.
    monkeypatch.setattr(batching, "LINGER_SECONDS", 60.0)
    flow_run_id = recorder.flow_run()
    runs = [recorder.task_run(flow_run_id, f"t-{i}") for i in range(3)]
    batcher = StateBatcher(client)
    try:
        started = time.monotonic()
        for run in runs:  # one after the other, as a sequential flow proposes
            assert batcher.propose(run, 1, {"type": "RUNNING"})["status"] == "ACCEPTED"
            assert batcher.propose(run, 2, {"type": "COMPLETED"})["status"] == "ACCEPTED"
        assert time.monotonic() - started < 30
        assert batcher.requests == 6
    finally:
        batcher.close()


def test_concurrent_proposers_each_get_their_own_answer(
    client: CountingClient, recorder: Recorder
) -> None:
    flow_run_id = recorder.flow_run()
    runs = [recorder.task_run(flow_run_id, f"t-{i}") for i in range(32)]
    batcher = StateBatcher(client)

    def run_one(run: str) -> list[tuple[str, str, str]]:
        answers = [batcher.propose(run, 1, {"type": "RUNNING"})]
        answers.append(batcher.propose(run, 2, {"type": "COMPLETED"}))
        return [(a["id"], a["status"], a["state"]["type"]) for a in answers]

    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(run_one, runs))
    finally:
        batcher.close()
    assert answers == [
        [(run, "ACCEPTED", "RUNNING"), (run, "ACCEPTED", "COMPLETED")] for run in runs
    ]
    assert batcher.requests < 64  # 64 proposals: some requests carried several
