"""runview's Python SDK: inspect runs (views), talk to the server (clients), keep results.

    from sdk import FlowRunView, TaskRunView

    flow_run = FlowRunView.from_flow_run_id("...")
    flow_run.get_task_run("say_hello-1").get_result()

With ``RUNVIEW_API_URL`` unset everything runs embedded: the backend inside this process,
over ``$RUNVIEW_HOME/runview.db``.
"""

from sdk.client import AsyncClient, Client
from sdk.results import ResultRef, ResultStorage
from sdk.states import State
from sdk.views import NOT_LOADED, FlowRunView, LogRecord, TaskRunView

__all__ = [
    "NOT_LOADED",
    "AsyncClient",
    "Client",
    "FlowRunView",
    "LogRecord",
    "ResultRef",
    "ResultStorage",
    "State",
    "TaskRunView",
]
