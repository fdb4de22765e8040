"""Task-run state proposals, sent in batches.

Every thread of a flow run that proposes a task run's state hands the proposal to the flow
run's ``StateBatcher`` and waits for its answer. One request is in flight at a time; the
proposals that arrive meanwhile go together in the next one (up to ``MAX_BATCH``). A single
sequential task run pays one extra thread hop; a thousand mapped children running on a pool
share their requests instead of sending two thousand.

After an answer the next request waits, at most ``LINGER_SECONDS``, until as many new
proposals have arrived as the answer answered: on a pool, the threads just answered propose
again at once (a child's Completed after its Running), and without the wait they would
always miss the request that the other threads' proposals fill, so every request would carry
about half the pool. A lone proposer is never kept waiting: one answered, one arrived.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import uuid
from typing import Any

from sdk import documents
from sdk.client import Client
from sdk.runtime.text import storable_state

MAX_BATCH = 1_000
# How long a request may wait for the proposers of the previous one to propose again
# (bench B3: 5 ms took a 10,000-child map from ~1,250 requests to ~780).
LINGER_SECONDS = 0.005


class StateBatcher:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.requests = 0  # how many requests it sent (for tests and curiosity)
        self._waiting: list[tuple[dict[str, Any], concurrent.futures.Future[dict[str, Any]]]] = []
        self._ready = threading.Condition()
        self._closed = False
        self._arrived = 0  # proposals since the last answer was handed out
        self._thread = threading.Thread(target=self._loop, name="runview-states", daemon=True)
        self._thread.start()

    def propose(self, task_run_id: Any, version: int, state: dict[str, Any]) -> dict[str, Any]:
        """Propose ``state``; the server's answer ``{id, status, message, state}``."""
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        proposal = {
            "task_run_id": str(task_run_id),
            "version": version,
            "state": storable_state(state),
            # The client retries a batch whose answer was lost; the server answers each
            # proposal it already accepted as it did the first time.
            "proposal_id": str(uuid.uuid4()),
        }
        with self._ready:
            if self._closed:
                raise RuntimeError("the flow run's state batcher is closed")
            self._waiting.append((proposal, future))
            self._arrived += 1
            self._ready.notify()
        return future.result()

    def _loop(self) -> None:
        answered = 0  # proposers answered by the last request
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._waiting or self._closed)
                # The proposers just answered mostly propose again at once (a mapped child's
                # Completed right after its Running). Waiting briefly for them sends one
                # request where there would be two half-full ones.
                deadline = time.monotonic() + LINGER_SECONDS
                while self._arrived < answered and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._ready.wait(remaining):
                        break
                if not self._waiting:
                    return  # closed, nothing left to send
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            self._send(batch)
            answered = len(batch)

    def _send(
        self, batch: list[tuple[dict[str, Any], concurrent.futures.Future[dict[str, Any]]]]
    ) -> None:
        self.requests += 1
        try:
            answer = self.client.execute(
                documents.SET_TASK_RUN_STATES, {"input": {"states": [p for p, _ in batch]}}
            )
        except BaseException as error:  # every waiting proposer learns why
            self._answering()
            for _, future in batch:
                future.set_exception(error)
            return
        self._answering()
        for (_, future), change in zip(batch, answer["set_task_run_states"]["states"], strict=True):
            future.set_result(change)

    def _answering(self) -> None:
        """Count arrivals from here: a proposer answered may propose again before the loop
        looks, and that proposal must count."""
        with self._ready:
            self._arrived = 0

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout=30)
