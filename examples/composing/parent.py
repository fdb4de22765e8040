"""The parent flow: schedules a run of the child flow and takes a task run's result out of it.

runview register examples/composing/child.py   # once: where the child flow lives
runview agent start &                           # runs the child's runs
python examples/composing/parent.py             # [0, 1, 2, 3, 4]
"""

from __future__ import annotations

from typing import Any

from sdk import create_flow_run, flow, get_task_run_result


@flow
def parent() -> Any:
    child_run_id = create_flow_run(flow_name="child")
    # Waits until the child flow run is finished; says every 30 s what it is waiting for.
    return get_task_run_result(child_run_id, "create_some_data-1", timeout=300)


if __name__ == "__main__":
    print(parent())
