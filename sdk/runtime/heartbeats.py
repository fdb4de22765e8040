"""Heartbeats: a running flow run tells the server it is alive, and learns if it is being
cancelled.

Without heartbeats the server's crash detection would mark a long flow run Crashed. Each
answer carries the run's state: Cancelling (or already Cancelled) sets the flow run's
``cancelling`` event, which stops new task runs at their next call.
"""

from __future__ import annotations

import sys
import threading

from sdk import documents
from sdk.runtime.context import FlowRunContext

STOP_STATES = frozenset({"CANCELLING", "CANCELLED"})


def notice_cancellation(ctx: FlowRunContext) -> bool:
    """Beat once; whether the flow run is being cancelled (then ``ctx.cancelling`` is set)."""
    answer = ctx.client.execute(
        documents.UPDATE_FLOW_RUN_HEARTBEAT, {"input": {"flow_run_id": str(ctx.flow_run_id)}}
    )["update_flow_run_heartbeat"]
    if answer["state_type"] in STOP_STATES:
        ctx.cancelling.set()
    return ctx.cancelling.is_set()


class Heartbeat:
    def __init__(self, ctx: FlowRunContext, interval: float) -> None:
        self.ctx = ctx
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="runview-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                notice_cancellation(self.ctx)
            except Exception as error:  # a missed beat is not fatal; the next one may pass
                print(f"runview: heartbeat failed: {error}", file=sys.stderr)
