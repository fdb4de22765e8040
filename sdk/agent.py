"""The agent: runs the flow runs that are due, each in a process of its own.

It claims due flow runs (``claim_flow_runs``: Scheduled or Late, start time passed, labels
it has; no two agents get the same run), up to ``limit`` at once, and starts a process for
each (``sdk._run_process``) that loads the run's flow from the entrypoint its flow was
registered with (``path/to/file.py:name`` or ``package.module:name``) and runs it as that
flow run. A flow that crashes, exits or leaks takes only its own process with it.

    runview agent start --label gpu --limit 4

While a process runs, the agent beats for its run (so a slow start or a busy flow is not
taken for a dead one), and learns from each beat whether the run is being cancelled: then
it stops the process (SIGTERM, SIGKILL after ``cancel_grace_seconds``) and ends the run
Cancelled. When a process exits and its run is not over, the agent ends it Crashed with how
the process ended and the last lines of its stderr. When the agent is stopped, it claims no
more, gives the running flows ``stop_grace_seconds`` to finish, then stops their processes
and ends their runs Crashed. An agent that dies leaves its claims to the server, which
hands runs claimed but never started back to Scheduled after ``claim_timeout_seconds``.

It says what it does on the ``runview.agent`` logger, one line per event: each run it
claims, each run's outcome (final state and message), and what went wrong when a run could
not be run at all or claiming failed. ``runview agent start`` prints those lines. Nothing
that goes wrong with one run stops the agent.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sdk import documents
from sdk._run_process import RunProcess
from sdk.client import Client, default_client
from sdk.exceptions import InvalidInput
from sdk.runtime.engine import describe, propose, state_after
from sdk.states import TERMINAL, State

logger = logging.getLogger("runview.agent")

# A beat that answers one of these stops the run's process.
STOP_STATES = frozenset({"CANCELLING", "CANCELLED"})


@dataclass
class _Run:
    """A claimed run and the process running it."""

    id: uuid.UUID
    flow_name: str
    version: int  # of the claim (Pending)
    process: RunProcess
    cancel_requested: bool = False  # a beat said Cancelling
    stopping: str | None = None  # why the agent stops its process: "cancel" or "agent"
    kill_at: float | None = None  # when SIGTERM has not been enough
    failing_beats: bool = False

    def __str__(self) -> str:
        return f"flow run {self.id} (flow {self.flow_name!r})"


class Agent:
    """Claims due flow runs and runs each in a process of its own, ``limit`` at once.

    Args:
        client: Where to claim runs; default from ``RUNVIEW_API_URL``. The runs' processes
            reach the same server (or embedded database) with the same settings.
        labels: The agent's labels; it takes runs whose labels it all has.
        poll_interval: Seconds to wait when nothing is due (or no slot is free).
        limit: How many runs it runs at once; it claims only as many as it has room for.
        heartbeat_interval: Seconds between its beats for each running run; default the
            client's ``heartbeat_interval_seconds``. A cancel is noticed at the next beat.
        cancel_grace_seconds: How long a process has to exit after SIGTERM before SIGKILL.
        stop_grace_seconds: How long running flows have to finish once the agent is told
            to stop, before their processes are stopped.

    Example::

        Agent(labels=["gpu"], limit=4).start()  # until interrupted
    """

    def __init__(
        self,
        *,
        client: Client | None = None,
        labels: Iterable[str] = (),
        poll_interval: float = 2.0,
        limit: int = 1,
        heartbeat_interval: float | None = None,
        cancel_grace_seconds: float = 5.0,
        stop_grace_seconds: float = 20.0,
    ) -> None:
        if limit < 1:
            raise InvalidInput(f"limit {limit!r} is out of range; expected 1 or more.")
        self.client = client or default_client()
        self.labels = list(labels)
        self.poll_interval = poll_interval
        self.limit = limit
        self.heartbeat_interval = (
            heartbeat_interval or self.client.settings.heartbeat_interval_seconds
        )
        self.cancel_grace_seconds = cancel_grace_seconds
        self.stop_grace_seconds = stop_grace_seconds
        self._runs: dict[uuid.UUID, _Run] = {}
        self._lock = threading.Lock()  # self._runs, between the loop and the beats
        self._wake = threading.Event()  # a process exited, a beat said cancel, or stop

    def run_once(self, limit: int | None = None) -> list[State]:
        """Claim up to ``limit`` due runs (default the agent's ``limit``), run them, each in
        its own process, and wait for all of them; their final states.

        Raises:
            ClientError, ServerError: Claiming failed (running a claimed run never raises).
        """
        with self._beating():
            claimed, ended = self._claim(limit or self.limit)
            while self._runs:
                self._wake.clear()
                ended.update(self._tend())
                if self._runs:
                    self._sleep()
        return [ended[run_id] for run_id in claimed]

    def start(self, stop: threading.Event | None = None) -> None:
        """Run due flow runs until ``stop`` is set (or forever), then stop as described
        above: no more claims, ``stop_grace_seconds`` for the running flows, then Crashed.

        When claiming fails (the server is down, say) it says so and tries again after
        ``poll_interval``.
        """
        stop = stop or threading.Event()
        threading.Thread(target=self._wake_on, args=(stop,), daemon=True).start()
        with self._beating():
            while not stop.is_set():
                self._wake.clear()
                self._tend()
                if (free := self.limit - len(self._runs)) > 0:
                    try:
                        self._claim(free)
                    except Exception as error:
                        logger.error(
                            "cannot claim flow runs: %s; trying again in %g s",
                            describe(error),
                            self.poll_interval,
                        )
                self._sleep()
            self._shut_down()

    def _wake_on(self, stop: threading.Event) -> None:
        stop.wait()
        self._wake.set()

    def _claim(self, limit: int) -> tuple[list[uuid.UUID], dict[uuid.UUID, State]]:
        """Claim up to ``limit`` runs and start their processes; the runs claimed, and the
        final states of those whose process could not be started."""
        rows = self.client.execute(
            documents.CLAIM_FLOW_RUNS, {"input": {"limit": limit, "labels": self.labels}}
        )["claim_flow_runs"]["flow_runs"]
        claimed, ended = [], {}
        for row in rows:
            run_id = uuid.UUID(row["id"])
            claimed.append(run_id)
            name = f"flow run {run_id} (flow {row['flow']['name']!r})"
            try:
                process = RunProcess(row, self.client, on_exit=self._wake.set)
            except Exception as error:  # no process at all: out of memory, or of pids
                logger.info("claimed %s", name)
                logger.error("%s could not be run: %s", name, describe(error))
                failed = {
                    "type": "CRASHED",
                    "message": f"The agent could not start its process: {describe(error)}",
                }
                ended[run_id] = self._end(run_id, row["version"], failed, name)
                _say_ended(name, ended[run_id])
                continue
            run = _Run(run_id, row["flow"]["name"], row["version"], process)
            with self._lock:
                self._runs[run_id] = run
            logger.info("claimed %s; running it in process %d", run, process.pid)
        return claimed, ended

    def _tend(self) -> dict[uuid.UUID, State]:
        """Finish the runs whose process exited, and stop the processes that must stop;
        the final states of the runs finished."""
        ended = {}
        for run in list(self._runs.values()):
            if run.process.poll() is not None:
                ended[run.id] = self._finish(run)
                with self._lock:
                    del self._runs[run.id]
            elif run.cancel_requested and run.stopping is None:
                logger.info("%s is being cancelled: stopping its process", run)
                self._stop(run, "cancel")
            elif run.kill_at is not None and time.monotonic() >= run.kill_at:
                run.process.signal(signal.SIGKILL)
                run.kill_at = None
        return ended

    def _stop(self, run: _Run, why: str) -> None:
        run.stopping = why
        run.process.signal(signal.SIGTERM)
        run.kill_at = time.monotonic() + self.cancel_grace_seconds

    def _sleep(self, until: float | None = None) -> None:
        """Wait for a poll interval (or ``until``, if sooner), or until a process exits, a
        beat asks for a cancel or the agent is told to stop."""
        timeout = self.poll_interval
        if until is not None and until > time.monotonic():
            timeout = min(timeout, until - time.monotonic())
        if any(run.kill_at is not None for run in self._runs.values()):
            timeout = min(timeout, 0.1)  # a SIGKILL to send
        self._wake.wait(timeout)

    def _finish(self, run: _Run) -> State:
        """End the run of a process that exited, if it is not over (and still this agent's
        claim); its final state, said on the logger."""
        run.process.wait()
        try:
            state = self._settle(run)
        except Exception as error:  # the server cannot be reached: its services will end it
            logger.error("%s: cannot record how it ended: %s", run, describe(error))
            state = State(type="CRASHED", name="Crashed", message=self._crash_message(run))
        _say_ended(str(run), state)
        return state

    def _settle(self, run: _Run) -> State:
        change: dict[str, Any] = {}
        for _ in range(3):  # the run may move between reading it and proposing
            current = self.client.execute(documents.FLOW_RUN, {"id": str(run.id)})
            current = current["flow_run_by_pk"]
            if current is None:
                raise InvalidInput(f"flow run {str(run.id)!r} no longer exists.")
            serialized = current["serialized_state"] or {
                "type": current["state_type"],
                "name": current["state"],
                "message": current["state_message"],
            }
            state = State.from_serialized(serialized, flow_run_id=run.id)
            if state.type in TERMINAL:
                return state
            if _released(current, run.version):
                logger.warning("%s went back to Scheduled: it is no longer this agent's", run)
                return state
            if current["state_type"] in STOP_STATES or run.stopping == "cancel":
                proposed = {"type": "CANCELLED", "message": "Cancelled: its process was stopped."}
            else:
                proposed = {"type": "CRASHED", "message": self._crash_message(run)}
            change = propose(self.client, "flow", run.id, current["version"], proposed)
            if change["status"] == "ACCEPTED":
                return state_after(change, run.id)
        return state_after(change, run.id)

    def _crash_message(self, run: _Run) -> str:
        if run.stopping == "agent":
            return (
                f"The agent stopped: it stopped the run's process after a grace period of"
                f" {self.stop_grace_seconds:g} s."
            )
        tail = run.process.stderr_tail()
        said = (
            f"\nThe last lines of its stderr:\n{tail}" if tail else " It wrote nothing on stderr."
        )
        return f"Its process {run.process.exit_reason()} before the run ended.{said}"

    def _end(self, run_id: uuid.UUID, version: int, proposed: dict[str, Any], name: str) -> State:
        """Propose a final state for a run that has no process; the state in force."""
        try:
            return state_after(propose(self.client, "flow", run_id, version, proposed), run_id)
        except Exception as error:  # the server is unreachable: its claim will expire
            logger.error("%s could not be marked %s: %s", name, proposed["type"], error)
            return State(type=proposed["type"], name=proposed["type"].title(), flow_run_id=run_id)

    def _shut_down(self) -> None:
        """Give the running flows their grace period, then stop their processes."""
        if self._runs:
            logger.warning(
                "stopping: no more claims; the flow runs still running (%d) get %g s to finish",
                len(self._runs),
                self.stop_grace_seconds,
            )
        deadline = time.monotonic() + self.stop_grace_seconds
        while self._runs:
            self._wake.clear()
            if time.monotonic() >= deadline:
                for run in self._runs.values():
                    if run.stopping is None:
                        self._stop(run, "agent")
            self._tend()
            if self._runs:
                self._sleep(until=deadline)

    @contextmanager
    def _beating(self) -> Iterator[None]:
        """Beat for the running runs in a thread of their own while the block runs (beats
        must go on while the loop waits for the server to end a run, say)."""
        done = threading.Event()
        thread = threading.Thread(target=self._beat, args=(done,), daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=30)

    def _beat(self, done: threading.Event) -> None:
        while not done.wait(self.heartbeat_interval):
            with self._lock:
                runs = list(self._runs.values())
            for run in runs:
                try:
                    answer = self.client.execute(
                        documents.UPDATE_FLOW_RUN_HEARTBEAT,
                        {"input": {"flow_run_id": str(run.id)}},
                    )["update_flow_run_heartbeat"]
                except Exception as error:  # said once; the claim or run stays alive till timeout
                    if not run.failing_beats:
                        logger.warning("cannot beat for %s: %s", run, describe(error))
                    run.failing_beats = True
                    continue
                run.failing_beats = False
                if answer["state_type"] in STOP_STATES and not run.cancel_requested:
                    run.cancel_requested = True
                    self._wake.set()


def _say_ended(run: str, state: State) -> None:
    """The outcome line: the final state and the first line of its message (a Crashed
    message goes on with the process's last words, which the console has shown already)."""
    message = f": {state.message.splitlines()[0]}" if state.message else ""
    level = logging.INFO if state.is_completed() else logging.WARNING
    logger.log(level, "%s ended %s%s", run, state.name, message)


def _released(current: dict[str, Any], claimed_version: int) -> bool:
    """Whether the run went back to Scheduled after this agent claimed it (the server
    released the claim): then another agent may be running it."""
    return any(
        s["type"] == "SCHEDULED" and s["version"] > claimed_version for s in current["states"]
    )
