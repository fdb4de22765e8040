"""What calling a task returns: data, a State, or a future; and how a flow's
final state is decided.

    python examples/states_and_futures.py
"""

from __future__ import annotations

from sdk import State, flow, task
from sdk.states import Failed


@task
def add_one(x: int) -> int:
    return x + 1


@task(retries=1, retry_delay_seconds=0.1)
def divide(x: int, y: int) -> float:
    return x / y


@flow
def returns() -> None:
    data = add_one(1)  # data
    state = add_one(1, return_state=True)  # a State
    future = add_one.submit(1)  # a future
    print(f"data: {data}; state: {state!r} -> {state.result()}; ", end="")
    print(f"future: {future.wait()!r} -> {future.result()}")


@flow
def swallows_a_failure() -> None:
    divide.submit(1, 0)  # fails (after one retry); the flow returns None


@flow
def decides_itself() -> State:
    return Failed("the flow said so")


if __name__ == "__main__":
    returns()
    state = swallows_a_failure(return_state=True)
    print(f"returns None with a failed task run: {state!r}")
    print(f"returns a State: {decides_itself(return_state=True)!r}")
