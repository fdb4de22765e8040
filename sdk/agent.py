"""The agent: runs the flow runs that are due.

It claims due flow runs (``claim_flow_runs``: Scheduled or Late, start time passed, labels
it has; no two agents get the same run), loads each run's flow from the entrypoint its flow
was registered with (``path/to/file.py:name``), and runs it as that flow run.

    runview agent start --label gpu
"""

from __future__ import annotations

import runpy
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from sdk import documents
from sdk.client import Client, default_client
from sdk.exceptions import InvalidInput
from sdk.flows import Flow
from sdk.runtime import flow_engine
from sdk.states import State


def load_flow(entrypoint: str | None, flow_name: str) -> Flow:
    """The Flow object named by ``entrypoint`` (``path/to/file.py:attribute``)."""
    if not entrypoint or ":" not in entrypoint:
        raise InvalidInput(
            f"flow {flow_name!r} has entrypoint {entrypoint!r}; expected 'path/to/file.py:name'"
            " (register the flow, or run it once, from its file)."
        )
    path, _, attribute = entrypoint.rpartition(":")
    try:
        namespace = runpy.run_path(path)
    except OSError as error:
        raise InvalidInput(f"cannot load flow {flow_name!r} from {path!r}: {error}") from error
    found = namespace.get(attribute)
    if not isinstance(found, Flow):
        raise InvalidInput(f"{entrypoint!r} is {type(found).__name__}, not a flow.")
    return found


class Agent:
    """Claims due flow runs and runs them, one at a time.

    Args:
        client: Where to claim runs; default from ``RUNVIEW_API_URL``.
        labels: The agent's labels; it takes runs whose labels it all has.
        poll_interval: Seconds to wait when nothing is due.
    """

    def __init__(
        self,
        *,
        client: Client | None = None,
        labels: Iterable[str] = (),
        poll_interval: float = 2.0,
    ) -> None:
        self.client = client or default_client()
        self.labels = list(labels)
        self.poll_interval = poll_interval

    def run_once(self, limit: int = 1) -> list[State]:
        """Claim up to ``limit`` due runs and run them; their final states."""
        claimed = self.client.execute(
            documents.CLAIM_FLOW_RUNS, {"input": {"limit": limit, "labels": self.labels}}
        )["claim_flow_runs"]["flow_runs"]
        return [self._run(row) for row in claimed]

    def _run(self, row: dict[str, Any]) -> State:
        flow_run_id, version = uuid.UUID(row["id"]), row["version"]
        try:
            flow = load_flow(row["flow"]["entrypoint"], row["flow"]["name"])
        except InvalidInput as error:
            change = flow_engine.propose(
                self.client, "flow", flow_run_id, version, {"type": "FAILED", "message": str(error)}
            )
            return flow_engine.state_after(change, flow_run_id)
        state: State = flow_engine.run_flow(
            flow,
            (),
            dict(row["parameters"]),
            return_state=True,
            claimed=(flow_run_id, version),
            client=self.client,
        )
        return state

    def start(self, stop: threading.Event | None = None) -> None:
        """Run due flow runs until ``stop`` is set (or forever)."""
        stop = stop or threading.Event()
        while not stop.is_set():
            if not self.run_once():
                stop.wait(self.poll_interval)
