"""The agent: runs the flow runs that are due.

It claims due flow runs (``claim_flow_runs``: Scheduled or Late, start time passed, labels
it has; no two agents get the same run), loads each run's flow from the entrypoint its flow
was registered with (``path/to/file.py:name`` or ``package.module:name``), and runs it
as that flow run.

    runview agent start --label gpu

It says what it does on the ``runview.agent`` logger, one line per event: each run it
claims, each run's outcome (final state and message), and what went wrong when a run could
not be run at all or claiming failed. ``runview agent start`` prints those lines. Nothing
that goes wrong with one run stops the agent: a flow it cannot load ends Failed with the
reason, and an unexpected error while running one marks it Crashed.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from sdk import documents
from sdk.client import Client, default_client
from sdk.entrypoints import load_flow
from sdk.exceptions import InvalidInput
from sdk.runtime import flow_engine
from sdk.runtime.engine import describe
from sdk.states import State

logger = logging.getLogger("runview.agent")


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
        """Claim up to ``limit`` due runs and run them; their final states.

        Raises:
            ClientError, ServerError: Claiming failed (running a claimed run never raises).
        """
        claimed = self.client.execute(
            documents.CLAIM_FLOW_RUNS, {"input": {"limit": limit, "labels": self.labels}}
        )["claim_flow_runs"]["flow_runs"]
        return [self._run(row) for row in claimed]

    def _run(self, row: dict[str, Any]) -> State:
        flow_run_id, flow_name = uuid.UUID(row["id"]), row["flow"]["name"]
        run = f"flow run {flow_run_id} (flow {flow_name!r})"
        logger.info("claimed %s", run)
        try:
            state = self._run_claimed(row)
        # SystemExit too: a flow calling sys.exit() must not stop the agent.
        except (Exception, SystemExit) as error:
            logger.error("%s could not be run: %s", run, describe(error))
            state = self._crash(flow_run_id, f"The agent failed to run it: {describe(error)}")
        message = f": {state.message}" if state.message else ""
        level = logging.INFO if state.is_completed() else logging.WARNING
        logger.log(level, "%s ended %s%s", run, state.name, message)
        return state

    def _run_claimed(self, row: dict[str, Any]) -> State:
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

    def _crash(self, flow_run_id: uuid.UUID, message: str) -> State:
        """Mark a run this agent failed to run Crashed (unless it is over); its state."""
        crashed = State(type="CRASHED", name="Crashed", message=message, flow_run_id=flow_run_id)
        try:
            current = self.client.execute(documents.FLOW_RUN, {"id": str(flow_run_id)})
            version = current["flow_run_by_pk"]["version"]
            proposed = {"type": "CRASHED", "message": message}
            change = flow_engine.propose(self.client, "flow", flow_run_id, version, proposed)
        except Exception as error:  # the server is unreachable too: it will see no heartbeat
            logger.error("flow run %s could not be marked Crashed: %s", flow_run_id, error)
            return crashed
        return flow_engine.state_after(change, flow_run_id)

    def start(self, stop: threading.Event | None = None) -> None:
        """Run due flow runs until ``stop`` is set (or forever).

        When claiming fails (the server is down, say) it says so and tries again after
        ``poll_interval``.
        """
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                ran = self.run_once()
            except Exception as error:
                logger.error(
                    "cannot claim flow runs: %s; trying again in %g s",
                    describe(error),
                    self.poll_interval,
                )
                ran = []
            if not ran:
                stop.wait(self.poll_interval)
