"""``FlowRunView`` and ``TaskRunView``: inspect runs without writing queries.

Views are immutable snapshots made by ``from_*`` class methods; ``get_latest()`` returns a
new snapshot. A task run's result is loaded lazily, once (``NOT_LOADED`` tells "not loaded"
from a result that is ``None``). A ``FlowRunView`` caches the views of its finished task
runs, which never change again, across its ``get_latest()`` copies; unfinished ones are
always fetched anew. A view pickles as its snapshot data and is loaded back with the
default client, so a task may return one.

Every method has an async twin named with an ``a`` (``afrom_task_slug``, ``aget_result``);
the plain ones run the same code on the SDK's loop and wait for it.

Example::

    task_run = TaskRunView.from_task_slug("foo-1", flow_run_id="...")
    task_run.get_result()  # "foobar!"
"""

from sdk.views._common import NOT_LOADED
from sdk.views.flow_run import FlowRunView, LogRecord
from sdk.views.task_run import PAGE_SIZE, TaskRunView

__all__ = ["NOT_LOADED", "PAGE_SIZE", "FlowRunView", "LogRecord", "TaskRunView"]
