"""Task-run state proposals, sent in batches.

Every thread of a flow run that proposes a task run's state hands the proposal to the flow
run's ``StateBatcher`` and waits for its answer. One request is in flight at a time; the
proposals that arrive meanwhile go together in the next one (up to ``MAX_BATCH``). A single
sequential task run pays one extra thread hop; a thousand mapped children running on a pool
share their requests instead of sending two thousand.
"""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

from sdk import documents
from sdk.client import Client

MAX_BATCH = 1_000


class StateBatcher:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.requests = 0  # how many requests it sent (for tests and curiosity)
        self._waiting: list[tuple[dict[str, Any], concurrent.futures.Future[dict[str, Any]]]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="runview-states", daemon=True)
        self._thread.start()

    def propose(self, task_run_id: Any, version: int, state: dict[str, Any]) -> dict[str, Any]:
        """Propose ``state``; the server's answer ``{id, status, message, state}``."""
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        proposal = {"task_run_id": str(task_run_id), "version": version, "state": state}
        with self._lock:
            if self._closed:
                raise RuntimeError("the flow run's state batcher is closed")
            self._waiting.append((proposal, future))
            self._wake.set()
        return future.result()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                if not self._waiting:
                    self._wake.clear()
                if not batch and self._closed:
                    return
            if batch:
                self._send(batch)

    def _send(
        self, batch: list[tuple[dict[str, Any], concurrent.futures.Future[dict[str, Any]]]]
    ) -> None:
        self.requests += 1
        try:
            answer = self.client.execute(
                documents.SET_TASK_RUN_STATES, {"input": {"states": [p for p, _ in batch]}}
            )
        except BaseException as error:  # every waiting proposer learns why
            for _, future in batch:
                future.set_exception(error)
            return
        for (_, future), change in zip(batch, answer["set_task_run_states"]["states"], strict=True):
            future.set_result(change)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.set()
        self._thread.join(timeout=30)
