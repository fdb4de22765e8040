"""The engine: runs task runs, proposing every state to the server (flow runs are in
``sdk.runtime.flow_engine``).

The server decides. The engine proposes a state, then does what the answer says:

- ACCEPTED Running or Retrying: run the code.
- ACCEPTED Cached: skip the code; the result is the cached run's.
- ACCEPTED AwaitingRetry (after a failure): wait for the retry time, then propose RUNNING again.
- REJECTED or ABORTED: stop, and return the state in force (the run is over or not allowed
  to start, e.g. its flow run is being cancelled).

A version is kept per run and goes up by one with each accepted proposal, so a proposal
made from a stale reading is refused by the server rather than applied twice.

That loop is written once, as a generator (``_task_run``) that does the engine's blocking
work and yields what only its driver may do: an ``Attempt`` (run the task's code) or a
delay (wait for a retry). ``run_task`` drives it in the calling thread. ``run_task_async``
drives it for an async task awaited in an async flow: the task's code runs on the caller's
event loop and the blocking steps in a worker thread, so other coroutines go on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import time
import uuid
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any

from sdk import documents
from sdk.client import Client
from sdk.exceptions import FlowRunCancelled
from sdk.runtime.calls import (
    Outcome,
    TaskTimedOut,
    call,
    call_async,
    in_thread,
)
from sdk.runtime.context import (
    FLOW_RUN,
    TASK_RUN,
    FlowRunContext,
    MappedParent,
    TaskRunContext,
)
from sdk.runtime.futures import RunviewFuture, RunviewFutureList
from sdk.runtime.heartbeats import notice_cancellation
from sdk.runtime.text import storable, storable_state
from sdk.states import NOT_LOADED, State


class UpstreamFailed(Exception):
    """A task run's input is the result of a task run that did not complete."""


@dataclass
class Attempt:
    """One run of a task's code, asked of the driver: call ``fn`` as task run ``context``."""

    context: TaskRunContext
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def propose(
    client: Client,
    kind: str,
    run_id: Any,
    version: int,
    state: dict[str, Any],
    *,
    retry_seconds: float | None = None,
) -> dict[str, Any]:
    """Propose ``state`` for a run; the server's answer ``{id, status, message, state}``.

    Task runs of a running flow run go through its ``StateBatcher``; the rest (flow runs,
    and the parent's task run of a nested flow, proposed from outside it) directly, with
    the client's retry budget or ``retry_seconds``. Either way the proposal carries an id,
    so a retry after a lost answer gets the first answer.
    """
    ctx = FLOW_RUN.get()
    if kind == "task" and ctx is not None and ctx.batcher is not None:
        return ctx.batcher.propose(run_id, version, state)
    document = documents.SET_TASK_RUN_STATES if kind == "task" else documents.SET_FLOW_RUN_STATES
    proposal = {
        f"{kind}_run_id": str(run_id),
        "version": version,
        "state": storable_state(state),
        "proposal_id": str(uuid.uuid4()),
    }
    variables = {"input": {"states": [proposal]}}
    answer = client.execute(document, variables, retry_seconds=retry_seconds)
    change: dict[str, Any] = answer[f"set_{kind}_run_states"]["states"][0]
    return change


def state_after(
    change: dict[str, Any],
    flow_run_id: uuid.UUID,
    task_run_id: uuid.UUID | None = None,
    **memory: Any,
) -> State:
    """The state in force after ``change``, with what this process knows of it."""
    base = State.from_serialized(change["state"], flow_run_id=flow_run_id, task_run_id=task_run_id)
    accepted = change["status"] == "ACCEPTED"
    return State(**{**vars(base), **(memory if accepted else {})})


def resolve(value: Any) -> Any:
    """``value`` with futures and States replaced by their data (one level of collections).

    Raises:
        UpstreamFailed: An input did not complete.
    """
    if isinstance(value, RunviewFuture | State):
        state = value.wait() if isinstance(value, RunviewFuture) else value
        if not state.is_completed():
            raise UpstreamFailed(f"an upstream run ended {state.name}")
        return state.result()
    if isinstance(value, RunviewFutureList):  # the children's data, as a plain list
        return [resolve(item) for item in value]
    if isinstance(value, list | tuple | set):
        return type(value)(resolve(item) for item in value)
    if isinstance(value, dict):
        return {key: resolve(item) for key, item in value.items()}
    return value


def holds_futures(value: Any) -> bool:
    """Whether ``value`` is a future, or a collection with one at its first level."""
    if isinstance(value, RunviewFuture):
        return True
    items = value.values() if isinstance(value, dict) else value
    return isinstance(value, list | tuple | set | dict) and any(
        isinstance(item, RunviewFuture) for item in items
    )


def describe(error: BaseException) -> str:
    """``Type: message``, as the server can store it whatever the message holds."""
    text = storable(str(error))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _delay(details: Mapping[str, Any]) -> float:
    """Seconds until an AwaitingRetry run's scheduled time."""
    when = details.get("scheduled_time")
    if not when:
        return 0.0
    return max(0.0, (dt.datetime.fromisoformat(when) - dt.datetime.now(dt.UTC)).total_seconds())


def run_task(
    ctx: FlowRunContext,
    task: Any,
    slug: str,
    map_index: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    task_run: tuple[str, int] | None = None,
) -> State:
    """Run one task run to a final state, recording it; ``task_run`` is (id, version) of a
    run already created (a mapped child). An async task's code runs to completion here."""
    steps = _task_run(ctx, task, slug, map_index, args, kwargs, task_run)
    step = _advance(steps, None)
    while not isinstance(step, State):
        outcome: Outcome | None = None
        try:
            if isinstance(step, Attempt):
                outcome = _attempt(task, step)
            else:
                time.sleep(step)
        except BaseException as stopped:  # recorded Crashed (best effort), then raised on
            with contextlib.suppress(Exception):
                _advance(steps, None, stopped)
            raise
        step = _advance(steps, outcome)
    return step


async def run_task_async(
    ctx: FlowRunContext,
    task: Any,
    slug: str,
    map_index: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> State:
    """``run_task`` for an async task awaited in an async flow: its code runs in the
    awaiting task, the engine's blocking steps in a worker thread."""
    steps = _task_run(ctx, task, slug, map_index, args, kwargs, None)
    step, stop = await in_thread(_advance, steps, None)
    while not isinstance(step, State):
        outcome: Outcome | None = None
        if stop is None:
            try:
                if isinstance(step, Attempt):
                    outcome = await _attempt_async(task, step)
                else:
                    await asyncio.sleep(step)
            except BaseException as stopped:  # cancelled
                stop = stopped
        if stop is not None:  # recorded Crashed (best effort), then raised on
            with contextlib.suppress(Exception):
                await in_thread(_advance, steps, None, stop)
            raise stop
        step, stop = await in_thread(_advance, steps, outcome)
    if stop is not None:
        raise stop
    return step


def _advance(
    steps: Generator[Attempt | float, Outcome | None, State],
    outcome: Outcome | None,
    stopped: BaseException | None = None,
) -> Attempt | float | State:
    """The generator's next request, or its final State (never StopIteration, which
    cannot cross a thread into a coroutine)."""
    try:
        return steps.throw(stopped) if stopped is not None else steps.send(outcome)
    except StopIteration as done:
        final: State = done.value
        return final


def _attempt(task: Any, attempt: Attempt) -> Outcome:
    token = TASK_RUN.set(attempt.context)
    try:
        return Outcome(call(task.fn, attempt.args, attempt.kwargs, task.timeout_seconds))
    except Exception as error:
        return Outcome(error=error)
    finally:
        TASK_RUN.reset(token)


async def _attempt_async(task: Any, attempt: Attempt) -> Outcome:
    token = TASK_RUN.set(attempt.context)
    try:
        value = await call_async(task.fn, attempt.args, attempt.kwargs, task.timeout_seconds)
        return Outcome(value)
    except Exception as error:
        return Outcome(error=error)
    finally:
        TASK_RUN.reset(token)


def _task_run(
    ctx: FlowRunContext,
    task: Any,
    slug: str,
    map_index: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    task_run: tuple[str, int] | None,
) -> Generator[Attempt | float, Outcome | None, State]:
    """The task run's life: its steps, yielding each ``Attempt`` of its code (sent back
    its ``Outcome``) and each retry delay in seconds; its final State. A stop thrown in at
    a yield (an interrupt, a cancelled coroutine) ends the run Crashed."""
    client, flow_run_id = ctx.client, ctx.flow_run_id
    # Inputs first: upstream futures are waited for, and the cache key sees real values.
    upstream: UpstreamFailed | None = None
    try:
        args, kwargs = resolve(args), resolve(kwargs)
    except UpstreamFailed as failed:
        upstream = failed
    if task_run is None:
        created = client.execute(
            documents.GET_OR_CREATE_TASK_RUN,
            {
                "input": {
                    "flow_run_id": str(flow_run_id),
                    "task_slug": slug,
                    "map_index": map_index,
                    "max_retries": task.retries,
                    "retry_delay_seconds": task.retry_delay_seconds,
                    "cache_key": None if upstream else task.cache_key(ctx, args, kwargs),
                    "tags": task.tags,
                }
            },
        )["get_or_create_task_run"]
        task_run = (created["id"], created["version"])
    task_run_id, version = task_run[0], task_run[1]
    run_uuid = uuid.UUID(task_run_id)
    if upstream is not None:
        message = f"Not run: {upstream}."
        change = propose(
            client, "task", task_run_id, version, {"type": "FAILED", "message": message}
        )
        return state_after(change, flow_run_id, run_uuid, exception=upstream)

    while True:
        change = propose(client, "task", task_run_id, version, {"type": "RUNNING"})
        if change["status"] == "ABORTED":
            notice_cancellation(ctx)  # the usual reason: the flow run is no longer running
        if change["status"] != "ACCEPTED":
            return state_after(change, flow_run_id, run_uuid)
        version += 1
        if change["state"]["type"] == "COMPLETED":  # Cached: the server gave us a result
            return state_after(change, flow_run_id, run_uuid)

        error: BaseException | None = None
        value: Any = None
        try:
            outcome = yield Attempt(TaskRunContext(run_uuid, slug, map_index), args, kwargs)
        except BaseException as stopped:
            return _stopped(ctx, task_run_id, version, stopped)
        assert outcome is not None
        try:
            value = outcome.unwrap()
            if isinstance(value, State):  # the task decided its own state, as a flow may
                proposed = _returned_state(ctx, task, value, task_run_id, slug, map_index)
                value = value.data
            else:
                # Persisting the result is part of the attempt: a run whose result cannot be
                # stored did not complete.
                ref = _write(ctx, task, value, task_run_id, slug, map_index)
                details = task.cache_details()
                proposed = {"type": "COMPLETED", "result": ref.to_dict(), "details": details}
        except TaskTimedOut as timed_out:
            error = timed_out
            proposed = {"type": "FAILED", "name": "TimedOut", "message": describe(timed_out)}
        except Exception as raised:
            error, proposed = raised, {"type": "FAILED", "message": describe(raised)}

        change = propose(client, "task", task_run_id, version, proposed)
        if change["status"] == "ACCEPTED":
            version += 1
            if change["state"]["type"] == "SCHEDULED":  # AwaitingRetry
                try:
                    yield _delay(change["state"].get("details") or {})
                except BaseException as stopped:
                    return _stopped(ctx, task_run_id, version, stopped)
                continue
        if error is None:
            return state_after(change, flow_run_id, run_uuid, data=value)
        return state_after(change, flow_run_id, run_uuid, exception=error)


def _stopped(ctx: FlowRunContext, task_run_id: str, version: int, stopped: BaseException) -> State:
    """Record a task run whose code was stopped: Cancelled if its flow run is being
    cancelled, else Crashed with the reason."""
    if isinstance(stopped, FlowRunCancelled):
        proposed = {"type": "CANCELLED", "message": "Cancelled while running."}
    else:
        proposed = {"type": "CRASHED", "message": f"Interrupted: {describe(stopped)}"}
    change = propose(ctx.client, "task", task_run_id, version, proposed)
    return state_after(change, ctx.flow_run_id, uuid.UUID(task_run_id), exception=stopped)


def _write(
    ctx: FlowRunContext, task: Any, value: Any, task_run_id: str, slug: str, map_index: int
) -> Any:
    """Write a task run's value to its result storage; the reference."""
    return task.storage(ctx).write(
        value,
        flow_run_id=ctx.flow_run_id,
        task_run_id=task_run_id,
        task_slug=slug,
        map_index=map_index,
        flow_name=ctx.flow.name,
    )


def _returned_state(
    ctx: FlowRunContext, task: Any, state: State, task_run_id: str, slug: str, map_index: int
) -> dict[str, Any]:
    """The proposal for a task that returned a State: that state, never the State object
    pickled as a result. A Completed state's data (``Completed(data=...)``) is its result."""
    proposed: dict[str, Any] = {"type": state.type, "name": state.name, "message": state.message}
    if state.result_ref is not None:
        proposed["result"] = state.result_ref.to_dict()
    elif state.is_completed() and state.data is not NOT_LOADED:
        proposed["result"] = _write(ctx, task, state.data, task_run_id, slug, map_index).to_dict()
    return proposed


def submit_task(ctx: FlowRunContext, task: Any, args: Any, kwargs: Any) -> RunviewFuture:
    slug = ctx.next_slug(task.name)
    work = contextvars.copy_context().run
    future = ctx.task_runner.submit(work, run_task, ctx, task, slug, -1, args, kwargs)
    wrapped = RunviewFuture(future, slug, -1, ctx.flow_run_id)
    ctx.track(wrapped)
    return wrapped


def map_task(
    ctx: FlowRunContext, task: Any, calls: list[tuple[tuple[Any, ...], dict[str, Any]]]
) -> RunviewFutureList:
    """A mapped parent and one child per call, all children created in one request."""
    client, slug = ctx.client, ctx.next_slug(task.name)
    parent = client.execute(
        documents.GET_OR_CREATE_TASK_RUN,
        {
            "input": {
                "flow_run_id": str(ctx.flow_run_id),
                "task_slug": slug,
                "max_retries": task.retries,
                "retry_delay_seconds": task.retry_delay_seconds,
            }
        },
    )["get_or_create_task_run"]
    children: list[str] = []
    if calls:
        children = client.execute(
            documents.GET_OR_CREATE_MAPPED_CHILDREN,
            {
                "input": {
                    "flow_run_id": str(ctx.flow_run_id),
                    "task_slug": slug,
                    "max_map_index": len(calls) - 1,
                }
            },
        )["get_or_create_mapped_task_run_children"]["ids"]
    # The parent runs once its children exist (a parent that ran alone is not mapped).
    version = parent["version"]
    if propose(client, "task", parent["id"], version, {"type": "RUNNING"})["status"] == "ACCEPTED":
        version += 1
    futures = RunviewFutureList()
    for map_index, ((args, kwargs), child) in enumerate(zip(calls, children, strict=True)):
        work = contextvars.copy_context().run
        future = ctx.task_runner.submit(
            work, run_task, ctx, task, slug, map_index, args, kwargs, (child, 1)
        )
        wrapped = RunviewFuture(future, slug, map_index, ctx.flow_run_id)
        ctx.track(wrapped)
        futures.append(wrapped)
    ctx.mapped_parents.append(MappedParent(parent["id"], version, list(futures)))
    return futures


def finish_mapped_parents(ctx: FlowRunContext) -> None:
    for parent in ctx.mapped_parents:
        states = [child.wait() for child in parent.children]
        proposed = summarize(states, what="children") or {"type": "COMPLETED"}
        propose(ctx.client, "task", parent.task_run_id, parent.version, proposed)


def summarize(states: list[State], what: str) -> dict[str, Any] | None:
    """The final state of a flow that returns nothing: any cancelled -> Cancelled; else any
    failed -> Failed; else None (Completed)."""
    cancelled = [s for s in states if s.is_cancelled()]
    failed = [s for s in states if s.type in ("FAILED", "CRASHED")]
    if cancelled:
        return {
            "type": "CANCELLED",
            "message": f"{len(cancelled)} of {len(states)} {what} cancelled.",
        }
    if failed:
        return {"type": "FAILED", "message": f"{len(failed)} of {len(states)} {what} failed."}
    return None
