"""The child flow: makes some data. An agent runs it when a parent asks for a run.

runview register examples/composing/child.py
"""

from __future__ import annotations

from sdk import Flow, task


@task
def create_some_data() -> list[int]:
    return list(range(5))


with Flow("child") as child_flow:
    data = create_some_data()
