"""runview's Python SDK: run flows and tasks, inspect runs, keep results on your storage.

    from sdk import flow, task, FlowRunView

    @task
    def add_one(x):
        return x + 1

    @flow
    def my_flow():
        return add_one(1)

    state = my_flow(return_state=True)
    FlowRunView.from_flow_run_id(state.flow_run_id).get_task_run("add_one-1").get_result()

A flow may decide its own final state by returning ``Completed(...)``, ``Failed(...)``,
``Cancelled(...)`` or ``TimedOut(...)``.

With ``RUNVIEW_API_URL`` unset everything runs embedded: the backend inside this process,
over ``$RUNVIEW_HOME/runview.db``.
"""

from sdk.agent import Agent
from sdk.client import AsyncClient, Client
from sdk.flow_runs import create_flow_run, get_task_run_result, wait_for_flow_run
from sdk.flows import Flow, Parameter, flow
from sdk.results import ResultRef, ResultStorage
from sdk.runtime.logs import get_run_logger
from sdk.states import Cancelled, Completed, Failed, State, TimedOut
from sdk.tasks import Task, task, unmapped
from sdk.views import NOT_LOADED, FlowRunView, LogRecord, TaskRunView

__all__ = [
    "NOT_LOADED",
    "Agent",
    "AsyncClient",
    "Cancelled",
    "Client",
    "Completed",
    "Failed",
    "FlowRunView",
    "LogRecord",
    "Flow",
    "Parameter",
    "ResultRef",
    "ResultStorage",
    "State",
    "Task",
    "TaskRunView",
    "TimedOut",
    "create_flow_run",
    "flow",
    "get_run_logger",
    "get_task_run_result",
    "task",
    "unmapped",
    "wait_for_flow_run",
]
