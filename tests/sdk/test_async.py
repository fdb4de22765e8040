"""Async flows and tasks, as in Prefect 2/3, against the real server (HTTP) and embedded, on
PostgreSQL and SQLite: awaited tasks, futures and maps in async flows, async tasks in sync
flows, async nested flows, concurrency, retries, timeouts and cancellation; and the rows
they leave, which are those of the sync equivalent."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sdk import FlowRunView, TaskRunView, documents, get_run_logger
from sdk.flows import flow as _flow
from sdk.runtime import flow_engine
from sdk.runtime.context import FLOW_RUN, TASK_RUN
from sdk.states import State
from sdk.tasks import task
from tests.sdk.conftest import CountingClient


@pytest.fixture
def flow(client: CountingClient, tmp_path: Path) -> Any:
    """``@flow`` bound to the test's client and a results folder of its own."""
    results = str(tmp_path / "results" / "{flow_run_id}" / "{task_run_id}")

    def decorate(fn: Any = None, **options: Any) -> Any:
        options = {"client": client, "result_storage": results, **options}
        return _flow(fn, **options) if fn is not None else _flow(**options)

    return decorate


def recorded(client: CountingClient, state: State) -> FlowRunView:
    assert state.flow_run_id is not None
    return FlowRunView.from_flow_run_id(state.flow_run_id, client=client)


ROWS = documents.Document(
    "test_async_rows",
    "query ($id: uuid!) { task_run(where: {flow_run_id: {_eq: $id}},"
    " order_by: [{task: {slug: asc}}, {map_index: asc}]) { task { slug } map_index state"
    " state_message run_count states(order_by: [{version: asc}]) { state message } } }",
    retry=True,
)


def rows(client: CountingClient, state: State) -> list[dict[str, Any]]:
    """What the server recorded of a flow run's task runs, with their histories."""
    answer = client.execute(ROWS, {"id": str(state.flow_run_id)})
    return list(answer["task_run"])


def history(run: FlowRunView) -> list[tuple[str, str | None]]:
    return [(s.name, s.message) for s in run.states]


def runtime_threads() -> list[str]:
    """The threads of running flows (the SDK's own loop thread lives on)."""
    names = [t.name for t in threading.enumerate() if t.name.startswith("runview-")]
    return [name for name in names if name != "runview-sdk-loop"]


@task
def add_one(x: int) -> int:
    return x + 1


@task
async def add_one_async(x: int) -> int:
    await asyncio.sleep(0)
    return x + 1


def test_an_async_flow_awaits_async_and_sync_tasks(client: CountingClient, flow: Any) -> None:
    seen: dict[str, Any] = {}

    @task
    async def double(x: int) -> int:
        get_run_logger().info("doubling %d", x)
        task_run = TASK_RUN.get()
        assert task_run is not None and task_run.task_slug == "double-1"
        await asyncio.sleep(0.01)
        return 2 * x

    @flow
    async def my_flow(x: int) -> int:
        doubled = await double(x)
        seen["state"] = await add_one_async(doubled, return_state=True)
        return add_one(seen["state"].result())  # a sync task: its data, no await

    assert asyncio.iscoroutine(coroutine := my_flow(1))
    coroutine.close()  # never awaited: nothing ran
    state = asyncio.run(my_flow(20, return_state=True))
    assert isinstance(state, State) and state.is_completed() and state.result() == 42
    assert asyncio.run(my_flow(1)) == 4
    assert FLOW_RUN.get() is None
    assert seen["state"].is_completed() and seen["state"].task_run_id is not None
    run = recorded(client, state)
    assert run.parameters == {"x": 20} and run.state.result() == 42
    assert [name for name, _ in history(run)] == ["Scheduled", "Pending", "Running", "Completed"]
    assert {v.task_slug: v.get_result() for v in run.get_all_task_runs()} == {
        "double-1": 40,
        "add_one_async-1": 41,
        "add_one-1": 42,
    }
    logs = [log for log in run.get_logs() if log.message == "doubling 20"]
    assert [log.task_run_id for log in logs] == [run.get_task_run("double-1").task_run_id]


def test_futures_and_maps_in_an_async_flow(client: CountingClient, flow: Any) -> None:
    @flow
    async def fanning() -> list[int]:
        first = add_one_async.submit(1)
        mapped = add_one_async.map([10, 20, 30])
        assert await first == 2  # awaiting a future gives its data
        chained = await add_one_async(first)  # futures are inputs, as in a sync flow
        assert await mapped == [11, 21, 31] and mapped.result() == [11, 21, 31]
        return [chained, *await asyncio.gather(*mapped)]

    @flow
    async def returns_the_map() -> Any:
        return add_one_async.map([1, 2])

    state = asyncio.run(fanning(return_state=True))
    assert state.result() == [3, 11, 21, 31]
    parent = TaskRunView.from_task_slug("add_one_async-2", state.flow_run_id, client=client)
    assert parent.state.is_completed() and parent.get_result() == [11, 21, 31]
    assert [child.map_index for child in parent.iter_mapped()] == [0, 1, 2]
    assert recorded(client, state).get_task_run("add_one_async-3").get_result() == 3
    assert asyncio.run(returns_the_map()) == [2, 3]


def test_an_async_task_in_a_sync_flow_runs_to_completion(client: CountingClient, flow: Any) -> None:
    @flow
    def sync_flow() -> int:
        state = add_one_async(1, return_state=True)
        assert state.is_completed()
        return add_one_async(state.result())  # data, not a coroutine

    @flow
    async def async_parent() -> int:
        return sync_flow()  # a sync flow in an async one runs there, to completion

    state = sync_flow(return_state=True)
    assert state.result() == 3
    run = recorded(client, state)
    assert [(v.task_slug, v.get_result()) for v in run.get_all_task_runs()] == [
        ("add_one_async-1", 2),
        ("add_one_async-2", 3),
    ]
    assert asyncio.run(async_parent()) == 3


def test_async_nested_flows(client: CountingClient, flow: Any) -> None:
    @flow
    async def child(x: int) -> int:
        return await add_one_async(x)

    @flow
    async def parent() -> list[int]:
        first = await child(1)
        state = await child(10, return_state=True)
        both = await asyncio.gather(child(100), child(1000))
        return [first, state.result(), *both]

    @flow
    def sync_parent() -> int:
        result: int = asyncio.run(child(5))  # an async flow from a sync one: run it
        return result

    state = asyncio.run(parent(return_state=True))
    assert state.result() == [2, 11, 101, 1001]
    run = recorded(client, state)
    links = {v.task_slug: v for v in run.get_all_task_runs()}
    assert sorted(links) == ["child-1", "child-2", "child-3", "child-4"]
    assert links["child-2"].state.is_completed() and links["child-2"].get_result() == 11
    # Numbered in call order, whichever the gather started first.
    assert [links[f"child-{n}"].get_result() for n in (3, 4)] == [101, 1001]
    children = client.execute(
        documents.FLOW_RUN_ROWS, {"where": {"parent_task_run_id": {"_is_null": False}}}
    )["flow_run"]
    assert len(children) == 4

    nested = sync_parent(return_state=True)
    assert nested.result() == 6
    link = recorded(client, nested).get_task_run("child-1")
    assert link.state.is_completed() and link.get_result() == 6


def test_gathered_async_tasks_run_at_once(client: CountingClient, flow: Any) -> None:
    @task
    async def nap(i: int) -> int:
        await asyncio.sleep(2)
        return i

    @flow
    async def napping() -> tuple[list[int], float]:
        started = time.monotonic()
        naps = await asyncio.gather(nap(1), nap(2))
        return list(naps), time.monotonic() - started

    state = asyncio.run(napping(return_state=True))
    naps, elapsed = state.result()
    assert naps == [1, 2]
    first, second = recorded(client, state).get_all_task_runs()
    assert first.start_time and first.end_time and second.start_time and second.end_time
    assert first.start_time < second.end_time and second.start_time < first.end_time
    # One nap's time with the runs' recording around it; one after the other would be 4 s.
    assert elapsed < 3.6, elapsed


def test_async_retries_and_failures(client: CountingClient, flow: Any) -> None:
    calls: list[int] = []

    @task(retries=2, retry_delay_seconds=0.05)
    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ValueError(f"attempt {len(calls)}")
        return "ok"

    @task
    async def broken() -> None:
        raise KeyError("missing")

    @flow
    async def retrying() -> str:
        return await flaky()

    @flow
    async def failing() -> None:
        state = await broken(return_state=True)
        assert state.is_failed() and isinstance(state.exception, KeyError)
        await broken()  # raises KeyError in the flow

    state = asyncio.run(retrying(return_state=True))
    assert state.result() == "ok" and len(calls) == 3
    view = recorded(client, state).get_task_run("flaky-1")
    assert (view.state.name, view.run_count) == ("Completed", 3)
    failed = asyncio.run(failing(return_state=True))
    assert failed.is_failed() and failed.message == "KeyError: 'missing'"
    with pytest.raises(KeyError):
        failed.result()
    task_run = recorded(client, failed).get_task_run("broken-1")
    assert task_run.state.is_failed() and task_run.state.message == "KeyError: 'missing'"


def test_a_cache_key_reuses_an_async_tasks_result(client: CountingClient, flow: Any) -> None:
    runs: list[int] = []

    def by_input(context: Any, parameters: dict[str, Any]) -> str:
        return f"cube:{parameters['x']}"

    @task(cache_key_fn=by_input, cache_expiration=dt.timedelta(hours=1))
    async def cube(x: int) -> int:
        runs.append(x)
        return x**3

    @flow
    async def cached() -> list[int]:
        return [await cube(2), await cube(2), await cube(3)]

    state = asyncio.run(cached(return_state=True))
    assert state.result() == [8, 8, 27] and runs == [2, 3]
    second = recorded(client, state).get_task_run("cube-2")
    assert (second.state.type, second.state.name, second.run_count) == ("COMPLETED", "Cached", 0)
    assert second.get_result() == 8


def test_an_async_task_that_overruns_is_cancelled_and_times_out(
    client: CountingClient, flow: Any
) -> None:
    cancelled: list[str] = []

    @task(timeout_seconds=0.2)
    async def slow(where: str) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(where)
            raise

    @flow
    async def waiting() -> None:
        await slow("awaited")

    @flow
    def sync_waiting() -> None:
        slow("sync flow", return_state=True)
        slow.submit("submitted").wait()

    @flow(timeout_seconds=0.2)
    async def slow_flow() -> None:
        await asyncio.sleep(60)

    started = time.monotonic()
    state = asyncio.run(waiting(return_state=True))
    assert state.is_failed() and "TimedOut" in (state.message or "")
    task_run = recorded(client, state).get_task_run("slow-1")
    assert (task_run.state.type, task_run.state.name) == ("FAILED", "TimedOut")
    assert task_run.state.message == "TaskTimedOut: timed out after 0.2 s"
    sync_state = sync_waiting(return_state=True)
    assert [v.state.name for v in recorded(client, sync_state).get_all_task_runs()] == [
        "TimedOut",
        "TimedOut",
    ]
    assert cancelled == ["awaited", "sync flow", "submitted"]
    timed_out = asyncio.run(slow_flow(return_state=True))
    assert (timed_out.type, timed_out.name) == ("FAILED", "TimedOut")
    # Any one sleep not cut short would take 60 s; the rest is recording, slow on a busy box.
    assert time.monotonic() - started < 30


def test_a_cancelled_awaited_task_is_recorded_crashed(client: CountingClient, flow: Any) -> None:
    @task
    async def forever() -> None:
        await asyncio.sleep(60)

    @flow
    async def impatient() -> str:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(forever(), 0.2)
        return "went on"

    state = asyncio.run(impatient(return_state=True))
    assert state.is_completed() and state.result() == "went on"
    task_run = recorded(client, state).get_task_run("forever-1")
    assert (task_run.state.name, task_run.state.message) == (
        "Crashed",
        "Interrupted: CancelledError",
    )


def test_a_cancelled_async_flow_is_recorded_crashed(client: CountingClient, flow: Any) -> None:
    @flow
    async def endless() -> None:
        await asyncio.sleep(60)

    async def timed_out() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(endless(), 0.3)

    async def cancelled_while_starting() -> None:
        running = asyncio.create_task(endless())
        await asyncio.sleep(0)  # it is creating its flow run in a worker thread
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    before = runtime_threads()
    asyncio.run(timed_out())
    asyncio.run(cancelled_while_starting())
    runs = client.execute(documents.FLOW_RUN_ROWS, {"where": {}})["flow_run"]
    assert [(run["state"], run["state_message"]) for run in runs] == 2 * [
        ("Crashed", "Interrupted: CancelledError")
    ]
    assert runtime_threads() == before


def test_an_interrupt_in_an_async_task_crashes_its_runs(client: CountingClient, flow: Any) -> None:
    before = runtime_threads()

    @task
    async def interrupted() -> None:
        raise KeyboardInterrupt

    @flow
    async def stopping() -> None:
        await interrupted()

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(stopping())
    run = client.execute(documents.FLOW_RUN_ROWS, {"where": {}, "limit": 1})["flow_run"][0]
    assert (run["state"], run["state_message"]) == ("Crashed", "Interrupted: KeyboardInterrupt")
    task_run = FlowRunView.from_flow_run_id(run["id"], client=client).get_task_run("interrupted-1")
    assert (task_run.state.name, task_run.state.message) == (
        "Crashed",
        "Interrupted: KeyboardInterrupt",
    )
    assert FLOW_RUN.get() is None
    assert runtime_threads() == before


def test_an_async_flow_runs_to_completion_from_sync_code(client: CountingClient, flow: Any) -> None:
    @flow
    async def claimed_later() -> int:
        return await add_one_async(1)

    # As an agent runs a flow it loaded: run_flow, whatever kind the flow is.
    state = flow_engine.run_flow(claimed_later, (), {}, return_state=True)
    assert state.is_completed() and state.result() == 2


def test_async_runs_are_recorded_like_sync_ones(client: CountingClient, flow: Any) -> None:
    attempts: Counter[tuple[str, int]] = Counter()

    def make(kind: str) -> Any:
        def step(x: int) -> int:
            attempts[kind, x] += 1
            if x == 3 and attempts[kind, x] == 1:
                raise ValueError("not yet")
            if x == 4:
                raise RuntimeError("never")
            return x * 10

        async def async_step(x: int) -> int:
            return step(x)

        return task(name="step", retries=1, retry_delay_seconds=0)(
            async_step if kind == "async" else step
        )

    sync_step, async_step = make("sync"), make("async")

    @flow(name="shape")
    def sync_shape() -> list[int]:
        first = sync_step(1)
        future = sync_step.submit(2)
        sync_step.map([3, 5])  # 3 fails once, then completes on its retry
        sync_step(4, return_state=True)
        return [first, future.result()]

    @flow(name="shape")
    async def async_shape() -> list[int]:
        first = await async_step(1)
        future = async_step.submit(2)
        async_step.map([3, 5])
        await async_step(4, return_state=True)
        return [first, await future]

    sync_state = sync_shape(return_state=True)
    async_state = asyncio.run(async_shape(return_state=True))
    assert sync_state.result() == async_state.result() == [10, 20]
    assert (sync_state.type, sync_state.name, sync_state.message) == (
        async_state.type,
        async_state.name,
        async_state.message,
    )
    assert history(recorded(client, sync_state)) == history(recorded(client, async_state))
    assert rows(client, sync_state) == rows(client, async_state)
    assert len(rows(client, async_state)) == 6

    def results(state: State) -> dict[tuple[str, int], Any]:
        return {
            (v.task_slug, v.map_index): v.get_result()
            for v in recorded(client, state).get_all_task_runs()
            if v.state.is_completed()
        }

    assert results(sync_state) == results(async_state)
    assert results(async_state)[("step-3", -1)] == [30, 50]
