"""The flow-run half of the engine: create the run, run the function under a heartbeat,
decide its final state (see ``sdk.flows``), and mirror a nested flow run on its parent's
task run. Task runs are in ``sdk.runtime.engine``.

``run_flow`` runs a flow in the calling thread; ``run_flow_async`` awaits an async flow's
code in the caller's task and does the same steps (``_start``, ``_close``) in worker
threads, so a flow run is recorded the same either way.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from sdk import documents
from sdk.client import Client
from sdk.results import ResultStorage
from sdk.runtime.batching import StateBatcher
from sdk.runtime.calls import (
    Outcome,
    TaskTimedOut,
    call,
    call_async,
    in_thread,
    run_coroutine,
)
from sdk.runtime.context import FLOW_RUN, FlowRunContext
from sdk.runtime.engine import (
    UpstreamFailed,
    describe,
    finish_mapped_parents,
    holds_futures,
    propose,
    resolve,
    state_after,
    summarize,
)
from sdk.runtime.heartbeats import Heartbeat
from sdk.runtime.logs import LogShipper
from sdk.states import TERMINAL, State

# How long a flow run's final state is retried while the server cannot be reached: a flow
# that failed because the server was gone past the client's budget ends Failed, with that
# reason, once the server is back.
FINAL_STATE_RETRY_SECONDS = 600.0
# The same for a process being interrupted (Ctrl-C): someone is waiting for it to stop.
INTERRUPTED_RETRY_SECONDS = 5.0


def _parameters(fn: Callable[..., Any], args: Any, kwargs: Any) -> dict[str, Any]:
    """The call's arguments by parameter name, ``**kwargs`` spread out, defaults filled in."""
    signature = inspect.signature(fn)
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    parameters: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            parameters.update(value)
        else:
            parameters[name] = value
    return parameters


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr))


@dataclass
class _Started:
    """A flow run ``_start`` set running, with what ``_close`` needs to end it."""

    ctx: FlowRunContext
    version: int
    parent: FlowRunContext | None
    parent_task_run: tuple[str, int] | None
    # Closes the heartbeat, the state batcher and the log shipper, in that order.
    threads: contextlib.ExitStack


def run_flow(
    flow: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    return_state: bool,
    claimed: tuple[uuid.UUID, int] | None = None,
    client: Client | None = None,
) -> Any:
    """Run a flow (top-level or nested in the current flow run) and record it.

    ``claimed`` is (id, version) of a flow run an agent claimed (Pending): the flow runs
    as that run instead of creating one. An async flow runs to completion here (an agent
    runs it so); calling one gives ``run_flow_async`` instead.
    """
    if inspect.iscoroutinefunction(flow.fn):
        return run_coroutine(run_flow_async(flow, args, kwargs, return_state, claimed, client))
    started = _start(flow, args, kwargs, claimed, client)
    if isinstance(started, State):
        return started if return_state else started.result()
    token = FLOW_RUN.set(started.ctx)
    try:
        outcome = Outcome(call(flow.fn, args, kwargs, flow.timeout_seconds))
    except BaseException as raised:  # an interrupt is recorded, then raised on
        outcome = Outcome(error=raised)
    finally:
        FLOW_RUN.reset(token)
    state = _close(started, outcome)
    if outcome.interrupt is not None:
        raise outcome.interrupt
    return state if return_state else state.result()


def run_flow_async(
    flow: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    return_state: bool,
    claimed: tuple[uuid.UUID, int] | None = None,
    client: Client | None = None,
) -> Coroutine[Any, Any, Any]:
    """``run_flow`` for an async flow, as a coroutine: the flow's code runs in the awaiting
    task, the engine's blocking steps in worker threads (the context variables go with
    them). A nested flow's slug is taken now, so slugs count calls, not awaits."""
    parent = FLOW_RUN.get()
    slug = parent.next_slug(flow.name) if parent is not None and claimed is None else None
    return _run_flow_async(flow, args, kwargs, return_state, claimed, client, slug)


async def _run_flow_async(
    flow: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    return_state: bool,
    claimed: tuple[uuid.UUID, int] | None,
    client: Client | None,
    slug: str | None,
) -> Any:
    started, cancelled = await in_thread(_start, flow, args, kwargs, claimed, client, slug)
    if isinstance(started, State):
        if cancelled is not None:
            raise cancelled
        return started if return_state else started.result()
    outcome = Outcome(error=cancelled)  # cancelled while starting: it ends at once
    if cancelled is None:
        token = FLOW_RUN.set(started.ctx)
        try:
            outcome = Outcome(await call_async(flow.fn, args, kwargs, flow.timeout_seconds))
        except BaseException as raised:  # a cancelled flow is recorded Crashed, then raised on
            outcome = Outcome(error=raised)
        finally:
            FLOW_RUN.reset(token)
    state, cancelled = await in_thread(_close, started, outcome)
    if (interrupt := outcome.interrupt or cancelled) is not None:
        raise interrupt
    return state if return_state else state.result()


def _start(
    flow: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    claimed: tuple[uuid.UUID, int] | None,
    client: Client | None,
    slug: str | None = None,
) -> _Started | State:
    """Create the flow run (and, nested, its parent's task run, named ``slug`` if given)
    and set it Running, with its threads started; or the State in force if it may not run."""
    from sdk.client import default_client

    parent = FLOW_RUN.get()
    client = client or (parent.client if parent is not None else flow.client or default_client())
    if claimed is None:
        # Recording where the flow is defined lets an agent run it later by name.
        flow_input = {"name": flow.name, "default_entrypoint": flow.entrypoint()}
        client.execute(documents.CREATE_FLOW, {"input": flow_input})

    parent_task_run: tuple[str, int] | None = None
    if parent is not None and claimed is None:
        created = client.execute(
            documents.GET_OR_CREATE_TASK_RUN,
            {
                "input": {
                    "flow_run_id": str(parent.flow_run_id),
                    "task_slug": slug or parent.next_slug(flow.name),
                }
            },
        )["get_or_create_task_run"]
        change = propose(client, "task", created["id"], created["version"], {"type": "RUNNING"})
        if change["status"] != "ACCEPTED":
            state = state_after(change, parent.flow_run_id, uuid.UUID(created["id"]))
            parent.track(state)
            return state
        parent_task_run = (created["id"], created["version"] + 1)

    if claimed is None:
        parameters = _parameters(flow.fn, args, kwargs)
        run = client.execute(
            documents.CREATE_FLOW_RUN,
            {
                "input": {
                    "flow_name": flow.name,
                    "parameters": _jsonable(parameters),
                    "idempotency_key": str(uuid.uuid4()),
                    "parent_task_run_id": parent_task_run[0] if parent_task_run else None,
                    # This process runs it now: no agent may claim it meanwhile.
                    "pending": True,
                }
            },
        )["create_flow_run"]
        flow_run_id, version = uuid.UUID(run["id"]), run["version"]
    else:
        flow_run_id, version = claimed
    change = propose(client, "flow", flow_run_id, version, {"type": "RUNNING"})
    if change["status"] != "ACCEPTED":
        return _finish(parent, parent_task_run, state_after(change, flow_run_id), client)

    ctx = FlowRunContext(
        client=client,
        flow=flow,
        flow_run_id=flow_run_id,
        storage=flow.result_storage or ResultStorage(serializer=flow.result_serializer),
        task_runner=flow.task_runner.duplicate(),
    )
    with contextlib.ExitStack() as starting:  # if one fails to start, those started stop
        ctx.logs = LogShipper(client)
        starting.callback(ctx.logs.close)  # the logs are stored before the final state is
        ctx.batcher = StateBatcher(client)
        starting.callback(ctx.batcher.close)
        starting.enter_context(Heartbeat(ctx, client.settings.heartbeat_interval_seconds))
        ctx.task_runner.start()
        threads = starting.pop_all()
    return _Started(ctx, version + 1, parent, parent_task_run, threads)


def _close(started: _Started, outcome: Outcome) -> State:
    """End a flow run whose code returned or raised ``outcome``: wait for its task runs and
    finish its mapped parents (unless it was interrupted), stop its threads whatever
    happens, and record its final state (an interrupt: Crashed, for the caller to raise)."""
    ctx = started.ctx
    interrupt = outcome.interrupt
    token = FLOW_RUN.set(ctx)  # its proposals go through its own batcher meanwhile
    try:
        with started.threads:
            try:
                ctx.task_runner.shutdown(wait=interrupt is None)
                if interrupt is None:
                    finish_mapped_parents(ctx)
            except Exception as failed:  # a failure while finishing fails the run
                if outcome.error is None:
                    outcome = Outcome(error=failed)
    finally:
        FLOW_RUN.reset(token)
    if interrupt is not None:
        # Best effort: the process is stopping; a server that cannot be reached sees no
        # more heartbeats, and its crash detection ends the run instead.
        crashed = {"type": "CRASHED", "message": f"Interrupted: {describe(interrupt)}"}
        state = State(type="CRASHED", name="Crashed", flow_run_id=ctx.flow_run_id)
        with contextlib.suppress(Exception):
            change = _propose_final(
                ctx.client, ctx.flow_run_id, started.version, crashed, INTERRUPTED_RETRY_SECONDS
            )
            state = state_after(change, ctx.flow_run_id)
        return state
    return _end(started, outcome)


def _end(started: _Started, outcome: Outcome) -> State:
    """Decide the flow run's final state from what its code gave (see ``sdk.flows``),
    propose it, and mirror it on the parent's task run."""
    ctx, value, error = started.ctx, outcome.value, outcome.error
    memory: dict[str, Any] = {}
    proposed: dict[str, Any]
    if ctx.cancelling.is_set():
        proposed = {"type": "CANCELLED", "message": "Cancelled while running."}
    elif error is not None:
        name = "TimedOut" if isinstance(error, TaskTimedOut) else "Failed"
        proposed = {"type": "FAILED", "name": name, "message": describe(error)}
        memory["exception"] = error
    elif isinstance(value, State):
        proposed = {"type": value.type, "name": value.name, "message": value.message}
        if value.result_ref is not None:
            proposed["result"] = value.result_ref.to_dict()
        memory = {"data": value.data, "exception": value.exception}
    elif value is None and (summary := summarize(ctx.states(), what="task runs")) is not None:
        proposed = summary
    elif holds_futures(value):  # e.g. `return inc.map(items)`: the flow returns their data
        try:
            proposed, memory = _flow_result(ctx, resolve(value))
        except UpstreamFailed as failed:
            message = f"The flow returned a task run that did not complete: {failed}."
            proposed = {"type": "FAILED", "message": message}
            memory["exception"] = failed
    else:
        proposed, memory = _flow_result(ctx, value)
    change = _propose_final(ctx.client, ctx.flow_run_id, started.version, proposed)
    state = state_after(change, ctx.flow_run_id, **memory)
    return _finish(started.parent, started.parent_task_run, state, ctx.client)


def _propose_final(
    client: Client,
    flow_run_id: uuid.UUID,
    version: int,
    proposed: dict[str, Any],
    patience: float | None = None,
) -> dict[str, Any]:
    """Propose a flow run's final state. The server may have moved the run meanwhile (to
    Cancelling, after a cancel request): then propose again from its current version
    (Cancelled, if it is being cancelled), unless the run is already over.

    A flow that failed because the server was gone for longer than the client's budget
    still ends as soon as the server is back: its final state is retried for
    ``FINAL_STATE_RETRY_SECONDS`` (or ``patience``), so the run shows why it failed instead
    of being marked Crashed much later for a silence nobody explains.
    """
    if patience is None:
        patience = max(client.retry_seconds, FINAL_STATE_RETRY_SECONDS)
    change = propose(client, "flow", flow_run_id, version, proposed, retry_seconds=patience)
    if change["status"] == "REJECTED" and change["state"]["type"] not in TERMINAL:
        current = client.execute(
            documents.FLOW_RUN, {"id": str(flow_run_id)}, retry_seconds=patience
        )["flow_run_by_pk"]
        if current["state_type"] == "CANCELLING":  # cancelled after the last heartbeat
            proposed = {"type": "CANCELLED", "message": "Cancelled while running."}
        change = propose(
            client, "flow", flow_run_id, current["version"], proposed, retry_seconds=patience
        )
    return change


def _flow_result(ctx: FlowRunContext, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Persist a flow's return value: Completed with its reference, or Failed if it cannot
    be stored."""
    try:
        ref = ctx.storage.write(
            value,
            flow_run_id=ctx.flow_run_id,
            task_run_id="flow-result",
            task_slug="flow-result",
            flow_name=ctx.flow.name,
        )
    except Exception as error:
        return {"type": "FAILED", "message": describe(error)}, {"exception": error}
    return {"type": "COMPLETED", "result": ref.to_dict()}, {"data": value}


def _finish(
    parent: FlowRunContext | None,
    parent_task_run: tuple[str, int] | None,
    state: State,
    client: Client,
) -> State:
    """Mirror a nested flow run's final state on its parent task run; the state."""
    if parent is not None and parent_task_run is not None:
        mirrored: dict[str, Any] = {
            "type": state.type,
            "name": state.name,
            "message": state.message,
        }
        if state.result_ref is not None:
            mirrored["result"] = state.result_ref.to_dict()
        propose(client, "task", parent_task_run[0], parent_task_run[1], mirrored)
        parent.track(state)
    return state
