"""Tasks for composing flows: start a run of another flow, wait for it, take a result out.

    with Flow("parent") as parent_flow:
        child_run_id = create_flow_run(flow_name="child")
        child_data = get_task_run_result(child_run_id, "create_some_data-1")

The child flow run is Scheduled for an agent (``runview agent start``) to run. A task run's
result is read only once its whole flow run is finished, since the flow run may still
change it until then, and only if the flow run completed.

While they wait, ``wait_for_flow_run`` and ``get_task_run_result`` say so every
``log_interval`` seconds, in the parent's run logs and on the console: the child's state,
and, while it is Scheduled or Late, that no agent has claimed it (with the labels an agent
needs, or that none can: its flow has no entrypoint). Each wait takes a ``timeout``
(``WaitTimedOut``). A child that ends Failed, Crashed or Cancelled makes
``get_task_run_result`` raise ``RunFailed`` or ``RunCancelled`` with the child's own message.

All three are tasks, in either flow style; outside a flow they are plain functions.
``wait_for_flow_run`` returns a ``FlowRunView``, which pickles as its snapshot, so it can be
a task's result like any other value.
"""

from __future__ import annotations

import datetime as dt
import logging
import shlex
import time
import uuid
from typing import TYPE_CHECKING, Any

from sdk import documents
from sdk.client import Client, default_client
from sdk.exceptions import (
    ClientError,
    InvalidInput,
    NotFound,
    RunCancelled,
    RunFailed,
    WaitTimedOut,
)
from sdk.runtime.context import FLOW_RUN, TASK_RUN
from sdk.runtime.logs import run_logger_or_console
from sdk.tasks import task
from sdk.views import FlowRunView

if TYPE_CHECKING:
    from sdk import subscriptions

_logger = logging.getLogger("runview.client")

LOG_INTERVAL_SECONDS = 30.0


def _client() -> Client:
    ctx = FLOW_RUN.get()
    return ctx.client if ctx is not None else default_client()


@task
def create_flow_run(
    flow_name: str,
    parameters: dict[str, Any] | None = None,
    labels: list[str] | None = None,
    run_name: str | None = None,
    idempotency_key: str | None = None,
) -> str:
    """Schedule a run of the registered flow ``flow_name``, for an agent to run.

    Inside a flow, the new run is linked to this task run as its parent, and a retry of
    this task run reuses the run it already created (the idempotency key is the task run's).

    Args:
        flow_name: A flow registered with an entrypoint (``runview register child.py``).
        parameters: The run's parameters.
        labels: The run's labels; only an agent with all of them claims it. Default: the
            labels the flow was registered with.
        run_name: The run's name; default: one the server makes up.
        idempotency_key: Creating a run with a key already used gives that run again.

    Returns:
        The new flow run's id.

    Example::

        child_run_id = create_flow_run(flow_name="child", labels=["gpu"])
    """
    ctx, task_run = FLOW_RUN.get(), TASK_RUN.get()
    client = ctx.client if ctx is not None else default_client()
    key = idempotency_key or (str(task_run.task_run_id) if task_run else str(uuid.uuid4()))
    answer = client.execute(
        documents.CREATE_FLOW_RUN,
        {
            "input": {
                "flow_name": flow_name,
                "parameters": parameters or {},
                "labels": labels,  # None: the flow's registered labels
                "flow_run_name": run_name,
                "idempotency_key": key,
                "parent_task_run_id": str(task_run.task_run_id) if task_run else None,
            }
        },
    )
    return str(answer["create_flow_run"]["id"])


@task
def wait_for_flow_run(
    flow_run_id: uuid.UUID | str,
    *,
    timeout: float | None = None,
    poll_interval: float = 1.0,
    log_interval: float = LOG_INTERVAL_SECONDS,
    raise_final_state: bool = False,
) -> FlowRunView:
    """Wait until a flow run is finished, saying how it is doing every ``log_interval`` s.

    Args:
        flow_run_id: The flow run to wait for (``create_flow_run`` returns it).
        timeout: Seconds to wait at most; None: as long as it takes.
        poll_interval: Seconds between looks at the run where the server streams no events
            (where it does, the wait wakes when the run changes, and this often).
        log_interval: Seconds between lines in the run logs (and on the console) while
            waiting; one says when no agent has claimed the run yet.
        raise_final_state: Raise if the run did not complete, rather than return it.

    Returns:
        The finished run's view. As a task's result it is pickled without its client, and
        loaded back with the default client.

    Raises:
        WaitTimedOut: The run did not finish within ``timeout`` (a ``TimeoutError``).
        RunFailed: With ``raise_final_state``: the run ended Failed or Crashed.
        RunCancelled: With ``raise_final_state``: the run ended Cancelled.

    Example::

        child = wait_for_flow_run(child_run_id, timeout=600)
        child.state  # Completed(type=COMPLETED)
    """
    view = _wait(flow_run_id, "wait_for_flow_run", timeout, poll_interval, log_interval)
    if raise_final_state and not view.state.is_completed():
        raise _not_completed(view, "")
    return view


@task
def get_task_run_result(
    flow_run_id: uuid.UUID | str,
    task_slug: str,
    map_index: int = -1,
    poll_interval: float = 1.0,
    *,
    timeout: float | None = None,
    log_interval: float = LOG_INTERVAL_SECONDS,
) -> Any:
    """The result of a task run of another flow run, once that flow run has completed.

    Args:
        flow_run_id: The flow run (``create_flow_run`` returns it).
        task_slug: The task run's slug, ``<task name>-<n>``: ``"create_some_data-1"``.
        map_index: A mapped child's index; -1: the task run itself (a mapped parent: the
            list of its children's results).
        poll_interval: Seconds between looks at the flow run where the server streams no
            events (where it does, the wait wakes when the run changes, and this often).
        timeout: Seconds to wait at most; None: as long as it takes.
        log_interval: Seconds between lines saying how the flow run is doing.

    Raises:
        RunFailed: The flow run ended Failed or Crashed (the message is its own).
        RunCancelled: The flow run ended Cancelled.
        NotFound: It completed without such a task run (the message lists those it has).
        WaitTimedOut: It did not finish within ``timeout`` (a ``TimeoutError``).

    Example::

        child_data = get_task_run_result(child_run_id, "create_some_data-1", timeout=600)
    """
    if not task_slug:
        raise InvalidInput(f"task_slug {task_slug!r} is empty; expected a slug like 'foo-1'.")
    view = _wait(flow_run_id, "get_task_run_result", timeout, poll_interval, log_interval)
    if not view.state.is_completed():
        raise _not_completed(view, _what_of(view, task_slug, map_index))
    try:
        task_run = view.get_task_run(task_slug, map_index=map_index)
    except NotFound:
        slugs = sorted({run.task_slug for run in view.get_all_task_runs()})
        index = f" with map_index {map_index}" if map_index != -1 else ""
        have = ", ".join(repr(slug) for slug in slugs) or "none"
        raise NotFound(
            f"{_name(view, True)} has no task run {task_slug!r}{index}; its task runs are: {have}."
        ) from None
    return task_run.get_result()


def _wait(
    flow_run_id: uuid.UUID | str,
    logger_name: str,
    timeout: float | None,
    poll_interval: float,
    log_interval: float,
) -> FlowRunView:
    """Poll the flow run until it is finished; log how it is doing every ``log_interval``."""
    logger = run_logger_or_console(logger_name)
    ctx = FLOW_RUN.get()
    view = FlowRunView.from_flow_run_id(flow_run_id, client=_client())
    if view.state.is_final():
        return view
    logger.info("Waiting for %s to finish; it is %s.", _name(view), view.state.name)
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    next_log = started + log_interval
    changes = _Changes(view)
    try:
        while not view.state.is_final():
            if ctx is not None:
                ctx.check_cancelled()  # a parent being cancelled stops waiting
            now = time.monotonic()
            if now >= next_log:  # before the timeout: a poll slower than both still says why
                _log_progress(logger, view, now - started)
                next_log = now + log_interval
            if deadline is not None and now >= deadline:
                why = _unclaimed(view) or _due_at(view)
                message = f"{_name(view, True)} is still {view.state.name} after {timeout:g} s"
                message += f", the timeout: {why}" if why else ", the timeout."
                raise WaitTimedOut(message if message[-1] in ".?" else f"{message}.", view.state)
            wake = min(t for t in (now + poll_interval, deadline, next_log) if t is not None)
            if changes.wait(max(0.0, wake - now)):
                view = view.get_latest()
    finally:
        changes.close()
    message = f": {view.state.message.rstrip('.')}" if view.state.message else ""
    logger.info("%s ended %s%s.", _name(view, True), view.state.name, message)
    return view


class _Changes:
    """What wakes a waiter: the flow run's event stream, so it wakes the moment the run's
    state changes; or, where the server offers none (or it broke off), each poll."""

    def __init__(self, view: FlowRunView) -> None:
        from sdk import subscriptions  # noqa: F811 (its WebSocket transport loads when used)

        self._stream: subscriptions.Stream | None = subscriptions.Stream(
            view._client,
            documents.FLOW_RUN_EVENTS,
            {"flow_run_id": str(view.flow_run_id)},
        )

    def wait(self, seconds: float) -> bool:
        """Wait at most ``seconds``; whether the flow run may have changed meanwhile."""
        if self._stream is not None:
            try:
                event = self._stream.next(timeout=seconds)
            except StopIteration:
                return True  # it ended: the last look shows how
            except (ClientError, InvalidInput) as error:
                _logger.debug("no event stream (%s); polling instead", error)
                self._stream = None
                return True
            return event is not None and event["flow_run_events"]["task_run_id"] is None
        time.sleep(seconds)
        return True

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


def _name(view: FlowRunView, capital: bool = False) -> str:
    return f"{'F' if capital else 'f'}low run {str(view.flow_run_id)!r} of flow {view.flow_name!r}"


def _unclaimed(view: FlowRunView) -> str | None:
    """What to check when no agent has claimed a due run yet; None for any other run."""
    if not view.state.is_scheduled() or view.state.name == "AwaitingRetry" or _due_at(view):
        return None
    flow = _client().execute(documents.FLOW_ENTRYPOINT, {"id": str(view.flow_id)})["flow_by_pk"]
    if not (flow or {}).get("entrypoint"):
        # Agents claim only runs of flows they can load: this one waits for nobody.
        return (
            f"no agent can claim it, as flow {view.flow_name!r} has no entrypoint (record one:"
            " `runview register FILE`)."
        )
    if not view.labels:
        return "no agent has claimed it; is `runview agent start` running?"
    flags = " ".join(f"--label {shlex.quote(label)}" for label in view.labels)
    return (
        "no agent has claimed it; is `runview agent start` running, with the labels"
        f" {view.labels!r} (`runview agent start {flags}`)?"
    )


def _due_at(view: FlowRunView) -> str:
    """When a run scheduled for later is due ('' if it is due, or not scheduled)."""
    start = view.scheduled_start_time
    if view.state.is_scheduled() and start is not None and start > dt.datetime.now(dt.UTC):
        return f"it is due at {start.isoformat(timespec='seconds')}"
    return ""


def _log_progress(
    logger: logging.LoggerAdapter[logging.Logger], view: FlowRunView, waited: float
) -> None:
    unclaimed = _unclaimed(view)
    if unclaimed is not None:
        # A warning: it is the line a new user, waiting on a run nobody runs, must not miss.
        logger.warning("%s is still %s: %s", _name(view, True), view.state.name, unclaimed)
        return
    detail = f" ({view.state.message.rstrip('.')})" if view.state.message else ""
    due_at = f"; {_due_at(view)}" if _due_at(view) else ""
    logger.info(
        "%s is still %s%s after %.0f s%s.",
        _name(view, True),
        view.state.name,
        detail,
        waited,
        due_at,
    )


def _what_of(view: FlowRunView, task_slug: str, map_index: int) -> str:
    """What became of the task run asked for, in a flow run that did not complete."""
    index = f" (map_index {map_index})" if map_index != -1 else ""
    try:
        task_run = view.get_task_run(task_slug, map_index=map_index)
    except NotFound:
        return f"task run {task_slug!r}{index} has no result"
    if task_run.state.is_completed():
        return (
            f"its task run {task_slug!r}{index} completed, but results are taken only from a"
            " flow run that completed (TaskRunView.from_task_slug reads it anyway)"
        )
    return f"task run {task_slug!r}{index} ended {task_run.state.name} and has no result"


def _not_completed(view: FlowRunView, what: str) -> RunFailed | RunCancelled:
    """The error for a flow run that finished without completing."""
    state = view.state
    because = (state.message or "no message").rstrip(".")
    message = f"{_name(view, True)} ended {state.name}: {because}"
    message += f"; {what}." if what else "."
    if state.is_cancelled():
        return RunCancelled(message, state)
    return RunFailed(message, state)
