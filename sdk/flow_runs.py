"""Tasks for composing flows: start a run of another flow, wait for it, take a result out.

    with Flow("parent") as parent_flow:
        child_run_id = create_flow_run(flow_name="child")
        child_data = get_task_run_result(child_run_id, "create_some_data-1")

The child flow run is Scheduled for an agent (``runview agent start``) to run. A task run's
result is read only once its whole flow run is finished, since the flow run may still
change it until then.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sdk import documents
from sdk.client import default_client
from sdk.exceptions import InvalidInput
from sdk.runtime.context import FLOW_RUN, TASK_RUN
from sdk.tasks import task
from sdk.views import FlowRunView, TaskRunView


@task
def create_flow_run(
    flow_name: str,
    parameters: dict[str, Any] | None = None,
    labels: list[str] | None = None,
    run_name: str | None = None,
    idempotency_key: str | None = None,
) -> str:
    """Schedule a run of the registered flow ``flow_name``; its id.

    Inside a flow, the new run is linked to this task run as its parent, and a retry of
    this task run reuses the run it already created (the idempotency key is the task run's).
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
                "labels": labels or [],
                "flow_run_name": run_name,
                "idempotency_key": key,
                "parent_task_run_id": str(task_run.task_run_id) if task_run else None,
            }
        },
    )
    return str(answer["create_flow_run"]["id"])


def wait_for_flow_run(
    flow_run_id: uuid.UUID | str, *, poll_interval: float = 1.0, timeout: float | None = None
) -> FlowRunView:
    """Block until the flow run is finished; its final view.

    Raises:
        TimeoutError: It did not finish within ``timeout`` seconds.
    """
    ctx = FLOW_RUN.get()
    client = ctx.client if ctx is not None else default_client()
    deadline = None if timeout is None else time.monotonic() + timeout
    view = FlowRunView.from_flow_run_id(flow_run_id, client=client)
    while not view.state.is_final():
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(
                f"flow run {str(flow_run_id)!r} is still {view.state.name} after {timeout} s."
            )
        time.sleep(poll_interval)
        view = view.get_latest()
    return view


@task
def get_task_run_result(
    flow_run_id: str, task_slug: str, map_index: int = -1, poll_interval: float = 1.0
) -> Any:
    """The result of a task run of another flow run, once that flow run is finished."""
    if not task_slug:
        raise InvalidInput(f"task_slug {task_slug!r} is empty; expected a slug like 'foo-1'.")
    view = wait_for_flow_run(flow_run_id, poll_interval=poll_interval)
    return TaskRunView.from_task_slug(
        task_slug, flow_run_id, map_index=map_index, client=view._client
    ).get_result()
