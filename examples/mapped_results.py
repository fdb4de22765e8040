"""Seed 001's mapped results, in both styles: inc over [0..5], read back by TaskRunView.

python examples/mapped_results.py
"""

from __future__ import annotations

from sdk import Flow, TaskRunView, flow, task


@task
def inc(x: int) -> int:
    return x + 1


@flow(name="example-mapped")
def example_mapped() -> None:
    inc.map([0, 1, 2, 3, 4, 5])


def show(style: str, flow_run_id: object) -> None:
    inc_parent = TaskRunView.from_task_slug("inc-1", flow_run_id=flow_run_id)
    print(f"{style}: inc-1 -> {inc_parent.get_result()}")
    inc_child = TaskRunView.from_task_slug("inc-1", flow_run_id=flow_run_id, map_index=2)
    print(f"{style}: inc-1[2] -> {inc_child.get_result()}")
    for child_task_run in inc_parent.iter_mapped():
        print(f"  {child_task_run.map_index}: {child_task_run.get_result()}")


if __name__ == "__main__":
    show("eager", example_mapped(return_state=True).flow_run_id)

    with Flow("example-mapped") as graph:
        inc.map([0, 1, 2, 3, 4, 5])
    show("graph", graph.run().flow_run_id)
