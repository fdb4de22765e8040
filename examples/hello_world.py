"""Hello world: two tasks in a flow, recorded with every state change.

python examples/hello_world.py            # embedded: recorded in $RUNVIEW_HOME/runview.db
"""

from __future__ import annotations

from sdk import FlowRunView, flow, get_run_logger, task


@task
def capitalize(name: str) -> str:
    return name.capitalize()


@task
def say_hello(name: str) -> str:
    greeting = f"Hello, {name}!"
    get_run_logger().info(greeting)
    return greeting


@flow
def hello(name: str = "marvin") -> str:
    return say_hello(capitalize(name))


if __name__ == "__main__":
    state = hello("marvin", return_state=True)
    print(state.result())
    run = FlowRunView.from_flow_run_id(state.flow_run_id)
    print(f"flow run {run.flow_run_id} ({run.name}): {' -> '.join(s.name for s in run.states)}")
    for task_run in run.get_all_task_runs():
        print(f"  {task_run.task_slug}: {task_run.state.name}, result {task_run.get_result()!r}")
    for log in run.get_logs():
        print(f"  log {log.name}: {log.message}")
