"""The runtime against the real server (HTTP) and embedded, on PostgreSQL and SQLite.

Every code sample of seed 003 is here, adapted only in its imports, each checking the value
it returns and what the server recorded; then seed 001's eager samples, the final-state
rules, retries, timeouts, nested flows and results.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from sdk import FlowRunView, TaskRunView, documents
from sdk.exceptions import InvalidInput
from sdk.flows import flow as _flow
from sdk.states import Cancelled, Completed, Failed, State
from sdk.tasks import task, unmapped
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


@task
def add_one(x: int) -> int:
    return x + 1


# Seed 003, "Return data"


def test_calling_a_task_returns_data(client: CountingClient, flow: Any) -> None:
    @flow
    def my_flow() -> int:
        result = add_one(1)  # return int
        return result

    state = my_flow(return_state=True)
    assert state.result() == 2 and my_flow() == 2
    run = recorded(client, state)
    assert run.state.is_completed()
    assert [s.name for s in run.states] == ["Scheduled", "Pending", "Running", "Completed"]
    task_run = run.get_task_run("add_one-1")
    assert task_run.state.is_completed() and task_run.get_result() == 2
    assert task_run.state.task_run_id == task_run.task_run_id


def test_calling_a_nested_flow_returns_data(client: CountingClient, flow: Any) -> None:
    @flow
    def nested_flow() -> int:
        return 42

    @flow
    def my_flow() -> int:
        result = nested_flow()  # return data
        return result

    state = my_flow(return_state=True)
    assert state.result() == 42
    parent = recorded(client, state)
    link = parent.get_task_run("nested_flow-1")
    assert link.state.is_completed() and link.get_result() == 42
    children = client.execute(documents.TASK_RUN_IDS, {"flow_run_id": str(parent.flow_run_id)})[
        "task_run"
    ]
    assert [c["id"] for c in children] == [str(link.task_run_id)]


# Seed 003, "Return Prefect state"


def test_return_state_gives_a_state(client: CountingClient, flow: Any) -> None:
    seen: dict[str, Any] = {}

    @flow
    def my_flow() -> int:
        state = add_one(1, return_state=True)  # return State
        seen["state"] = state
        result = state.result()  # return int
        return result

    assert my_flow() == 2
    state = seen["state"]
    assert isinstance(state, State) and state.is_completed()
    assert state.task_run_id is not None and state.flow_run_id is not None
    assert TaskRunView.from_task_run_id(state.task_run_id, client=client).get_result() == 2


def test_a_nested_flow_with_return_state(client: CountingClient, flow: Any) -> None:
    seen: dict[str, Any] = {}

    @flow
    def nested_flow() -> int:
        return 42

    @flow
    def my_flow() -> int:
        state = nested_flow(return_state=True)  # return State
        seen["state"] = state
        result = state.result()  # return int
        return result

    assert my_flow() == 42
    nested = recorded(client, seen["state"])
    assert nested.flow_name == "nested_flow" and nested.parent_task_run_id is not None


# Seed 003, "Return a PrefectFuture"


def test_submit_gives_a_future(client: CountingClient, flow: Any) -> None:
    seen: dict[str, Any] = {}

    @flow
    def my_flow() -> int:
        future = add_one.submit(1)  # return PrefectFuture
        seen["state"] = future.wait()  # return State
        result = future.result()  # return data
        return result

    state = my_flow(return_state=True)
    assert state.result() == 2
    assert seen["state"].is_completed() and seen["state"].name == "Completed"
    assert recorded(client, state).get_task_run("add_one-1").get_result() == 2


# Seed 003, "Final state determination"


@task
def boom() -> None:
    raise ValueError("boom")


def test_an_exception_in_the_flow_fails_it(client: CountingClient, flow: Any) -> None:
    @flow
    def failing() -> None:
        raise KeyError("missing")

    state = failing(return_state=True)
    assert state.is_failed() and "KeyError" in (state.message or "")
    with pytest.raises(KeyError):
        state.result()
    with pytest.raises(KeyError):
        failing()
    assert recorded(client, state).state.is_failed()


def test_none_returned_follows_the_task_runs(client: CountingClient, flow: Any) -> None:
    @flow
    def swallowed() -> None:
        add_one(1)
        boom.submit()  # never awaited: its state still decides

    @flow
    def fine() -> None:
        add_one(1)

    failed = swallowed(return_state=True)
    assert failed.is_failed() and failed.message == "1 of 2 task runs failed."
    assert recorded(client, failed).state.is_failed()
    assert fine(return_state=True).is_completed()


def test_a_cancelled_task_run_cancels_a_flow_that_returns_none(
    client: CountingClient, flow: Any
) -> None:
    @flow
    def nested() -> State:
        return Cancelled("not needed")

    @flow
    def outer() -> None:
        boom.submit()
        nested(return_state=True)

    @flow
    def raising() -> None:
        nested()  # without return_state, a cancelled nested flow raises here

    state = outer(return_state=True)
    assert state.is_cancelled() and "1 of 2 task runs cancelled" in (state.message or "")
    assert recorded(client, state).state.is_cancelled()
    failed = raising(return_state=True)
    assert failed.is_failed() and "RunCancelled" in (failed.message or "")


def test_a_returned_state_is_used(client: CountingClient, flow: Any) -> None:
    @flow
    def manual() -> State:
        return Failed("decided by the flow")

    @flow
    def completed() -> State:
        boom.submit()
        return Completed("all good anyway")

    state = manual(return_state=True)
    assert state.is_failed() and state.message == "decided by the flow"
    assert recorded(client, state).state.message == "decided by the flow"
    assert completed(return_state=True).is_completed()


def test_any_other_return_value_completes_the_flow(client: CountingClient, flow: Any) -> None:
    @flow
    def returns_despite_failure() -> str:
        boom.submit()
        return "done"

    state = returns_despite_failure(return_state=True)
    assert state.is_completed() and state.result() == "done"
    run = recorded(client, state)
    assert run.state.result() == "done"  # read back from the flow run's result location


# Seed 001, eager style


def test_seed_001_foo_and_mapped_inc(client: CountingClient, flow: Any) -> None:
    @task
    def foo() -> str:
        return "foobar!"

    @task
    def inc(x: int) -> int:
        return x + 1

    @flow(name="example-mapped")
    def example() -> None:
        foo()
        inc.map([0, 1, 2, 3, 4, 5])

    state = example(return_state=True)
    assert state.is_completed()
    flow_run_id = state.flow_run_id
    assert (
        TaskRunView.from_task_slug("foo-1", flow_run_id=flow_run_id, client=client).get_result()
        == "foobar!"
    )
    inc_parent = TaskRunView.from_task_slug("inc-1", flow_run_id=flow_run_id, client=client)
    assert inc_parent.state.is_completed() and inc_parent.get_result() == [1, 2, 3, 4, 5, 6]
    inc_child = TaskRunView.from_task_slug(
        "inc-1", flow_run_id=flow_run_id, map_index=2, client=client
    )
    assert inc_child.get_result() == 3
    assert [c.get_result() for c in inc_parent.iter_mapped()] == [1, 2, 3, 4, 5, 6]


def test_map_zips_iterables_and_passes_unmapped_whole(client: CountingClient, flow: Any) -> None:
    @task
    def add(x: int, y: int, scale: int) -> int:
        return (x + y) * scale

    @flow
    def mapped() -> list[int]:
        return add.map([1, 2, 3], y=[10, 20, 30], scale=unmapped(2)).result()

    assert mapped() == [22, 44, 66]
    assert add.map([1], y=[1], scale=unmapped(1)) == [2]  # outside a flow: plain calls


# Retries, timeouts, dependencies, slugs


def test_retries_follow_the_server(client: CountingClient, flow: Any) -> None:
    calls: list[int] = []

    @task(retries=2, retry_delay_seconds=0.05)
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ValueError(f"attempt {len(calls)}")
        return "ok"

    @flow
    def retrying() -> str:
        return flaky()

    state = retrying(return_state=True)
    assert state.result() == "ok" and len(calls) == 3
    view = recorded(client, state).get_task_run("flaky-1")
    assert view.run_count == 3
    assert view.state.name == "Completed"


def test_a_task_that_overruns_times_out(client: CountingClient, flow: Any) -> None:
    import time

    @task(timeout_seconds=0.2)
    def slow() -> None:
        time.sleep(2)

    @flow
    def waiting() -> None:
        slow()

    state = waiting(return_state=True)
    assert state.is_failed() and "TimedOut" in (state.message or "")
    task_run = recorded(client, state).get_task_run("slow-1")
    assert (task_run.state.type, task_run.state.name) == ("FAILED", "TimedOut")


def test_futures_as_arguments_are_dependencies(client: CountingClient, flow: Any) -> None:
    @flow
    def chain() -> int:
        first = add_one.submit(1)
        second = add_one.submit(first)
        return add_one(second)

    @flow
    def broken_chain() -> None:
        add_one.submit(boom.submit())

    assert chain() == 4
    state = broken_chain(return_state=True)
    assert state.is_failed()
    downstream = recorded(client, state).get_task_run("add_one-1")
    assert downstream.state.is_failed() and "Not run" in (downstream.state.message or "")


def test_slugs_count_calls_per_task(client: CountingClient, flow: Any) -> None:
    @flow
    def many() -> None:
        add_one(1)
        add_one.submit(2).wait()
        add_one(3)

    run = recorded(client, many(return_state=True))
    slugs = [v.task_slug for v in run.get_all_task_runs()]
    assert slugs == ["add_one-1", "add_one-2", "add_one-3"]
    assert run.parameters == {} and run.flow_name == "many"


def test_results_go_to_the_flows_storage_and_the_server_keeps_the_reference(
    client: CountingClient, flow: Any, tmp_path: Path
) -> None:
    @flow(result_storage=str(tmp_path / "custom" / "{flow_name}" / "{task_slug}"))
    def stored() -> int:
        return add_one(41)

    state = stored(return_state=True)
    task_run = recorded(client, state).get_task_run("add_one-1")
    assert task_run.state.result_ref is not None
    assert task_run.state.result_ref.location == str(tmp_path / "custom" / "stored" / "add_one-1")
    assert Path(task_run.state.result_ref.location).exists()


def test_task_options_are_recorded_on_the_task(client: CountingClient, flow: Any) -> None:
    @task(name="tagged", tags=["etl", "daily"], retries=3, retry_delay_seconds=2.5)
    def anything() -> int:
        return 1

    @flow
    def options() -> None:
        anything()

    state = options(return_state=True)
    query = documents.Document(
        "test_task_options",
        "query ($id: uuid!) { task_run(where: {flow_run_id: {_eq: $id}}) { task { slug name"
        " tags max_retries retry_delay_seconds } } }",
        retry=True,
    )
    rows = client.execute(query, {"id": str(state.flow_run_id)})["task_run"]
    assert rows == [
        {
            "task": {
                "slug": "tagged-1",
                "name": "tagged",
                "tags": ["etl", "daily"],
                "max_retries": 3,
                "retry_delay_seconds": 2.5,
            }
        }
    ]


def test_a_task_outside_a_flow_is_a_plain_function() -> None:
    assert add_one(1) == 2
    with pytest.raises(RuntimeError, match="runs inside a flow"):
        add_one.submit(1)


def test_parameters_are_recorded(client: CountingClient, flow: Any) -> None:
    @flow
    def greet(name: str, when: dt.date = dt.date(2026, 1, 1)) -> str:
        return f"hello {name}"

    state = greet("marvin", return_state=True)
    assert recorded(client, state).parameters == {
        "name": "marvin",
        "when": "datetime.date(2026, 1, 1)",
    }


def test_a_result_that_cannot_be_stored_fails_the_run(client: CountingClient, flow: Any) -> None:
    @task(result_serializer="json")
    def unserializable() -> set[int]:
        return {1, 2}

    @flow
    def storing() -> None:
        unserializable()

    state = storing(return_state=True)
    assert state.is_failed() and "TypeError" in (state.message or "")
    task_run = recorded(client, state).get_task_run("unserializable-1")
    assert task_run.state.is_failed()
    assert "not JSON serializable" in (task_run.state.message or "")


# Seed 001, graph style


def graph_flow(name: str, client: CountingClient, tmp_path: Path) -> Any:
    from sdk import Flow

    return Flow(name, client=client, result_storage=str(tmp_path / "g" / "{task_run_id}"))


def test_seed_001_mapped_inc_in_the_graph_style(client: CountingClient, tmp_path: Path) -> None:
    @task
    def inc(x: int) -> int:
        return x + 1

    with graph_flow("example-mapped", client, tmp_path) as flow:
        inc.map([0, 1, 2, 3, 4, 5])

    state = flow.run()
    assert state.is_completed() and state.flow_run_id is not None
    inc_parent = TaskRunView.from_task_slug("inc-1", flow_run_id=state.flow_run_id, client=client)
    assert inc_parent.get_result() == [1, 2, 3, 4, 5, 6]
    inc_child = TaskRunView.from_task_slug(
        "inc-1", flow_run_id=state.flow_run_id, map_index=2, client=client
    )
    assert inc_child.get_result() == 3


def test_graph_values_flow_between_calls_and_parameters(
    client: CountingClient, tmp_path: Path
) -> None:
    from sdk import Parameter

    @task
    def create_some_data(n: int) -> list[int]:
        return list(range(n))

    @task
    def total(values: list[int], offset: int) -> int:
        return sum(values) + offset

    with graph_flow("child", client, tmp_path) as flow:
        data = create_some_data(Parameter("n", default=5))
        doubled = add_one.map(data)
        total(doubled, offset=100)

    state = flow.run()
    assert state.is_completed()
    run = recorded(client, state)
    assert run.get_task_run("create_some_data-1").get_result() == [0, 1, 2, 3, 4]
    assert run.get_task_run("total-1").get_result() == 100 + sum(range(1, 6))
    state = flow.run(parameters={"n": 2})
    assert recorded(client, state).get_task_run("total-1").get_result() == 100 + 1 + 2
    assert recorded(client, state).parameters == {"n": 2}
    with pytest.raises(InvalidInput, match=r"\['m'\] are not Parameters of this flow"):
        flow.run(parameters={"m": 1}).result()


def test_register_records_the_graphs_tasks(client: CountingClient, tmp_path: Path) -> None:
    @task
    def inc(x: int) -> int:
        return x + 1

    with graph_flow("registered", client, tmp_path) as flow:
        inc.map([1, 2])
        add_one(1)
    flow_id = flow.register()
    tasks = client.execute(documents.CREATE_FLOW, {"input": {"name": "registered"}})["create_flow"]
    assert tasks["id"] == str(flow_id)
    assert [node.slug for node in flow.graph.nodes] == ["inc-1", "add_one-1"]


def test_a_cache_key_reuses_a_result_without_running(client: CountingClient, flow: Any) -> None:
    runs: list[int] = []

    def by_input(context: Any, parameters: dict[str, Any]) -> str:
        return f"square:{parameters['x']}"

    @task(cache_key_fn=by_input, cache_expiration=dt.timedelta(hours=1))
    def square(x: int) -> int:
        runs.append(x)
        return x * x

    @task(cache_key_fn=by_input, cache_expiration=dt.timedelta(seconds=-1))
    def expired(x: int) -> int:
        runs.append(-x)
        return x

    @flow
    def cached() -> list[int]:
        return [square(3), square(3), square(4), expired(5), expired(5)]

    state = cached(return_state=True)
    assert state.result() == [9, 9, 16, 5, 5]
    assert runs == [3, 4, -5, -5]  # the second square(3) did not run; expired caches do
    second = recorded(client, state).get_task_run("square-2")
    assert (second.state.type, second.state.name) == ("COMPLETED", "Cached")
    assert second.get_result() == 9 and second.run_count == 0
    assert cached() == [9, 9, 16, 5, 5] and runs[4:] == [-5, -5]  # across flow runs too


def test_run_logs_are_shipped_in_batches(client: CountingClient, flow: Any) -> None:
    from sdk import get_run_logger

    @task
    def chatty(n: int) -> None:
        logger = get_run_logger()
        for i in range(n):
            logger.info("line %d", i)

    @flow
    def logging_flow() -> None:
        get_run_logger().warning("starting")
        chatty(50)
        chatty.submit(2).wait()

    client.sent.clear()
    state = logging_flow(return_state=True)
    assert client.sent.count("write_run_logs") <= 2  # 53 records, one or two batches
    logs = recorded(client, state).get_logs()
    assert len(logs) == 53
    assert (logs[0].level, logs[0].message, logs[0].task_run_id) == (30, "starting", None)
    lines = [log for log in logs if log.name == "runview.runs.chatty-1"]
    assert [log.message for log in lines] == [f"line {i}" for i in range(50)]
    task_run = recorded(client, state).get_task_run("chatty-1")
    assert {log.task_run_id for log in lines} == {task_run.task_run_id}
    with pytest.raises(RuntimeError, match="inside a flow or a task"):
        get_run_logger()


def test_a_flow_run_being_cancelled_stops_and_ends_cancelled(
    client: CountingClient, flow: Any
) -> None:
    import threading
    import time

    from sdk.runtime.context import FLOW_RUN

    client.settings.heartbeat_interval_seconds = 0.05
    steps: list[int] = []
    flow_run_ids: list[Any] = []

    @task
    def step(i: int) -> int:
        steps.append(i)
        time.sleep(0.02)
        return i

    @flow
    def long() -> None:
        ctx = FLOW_RUN.get()
        assert ctx is not None
        flow_run_ids.append(ctx.flow_run_id)
        for i in range(500):
            try:
                step(i)
            except Exception:  # user code that swallows errors cannot swallow cancellation
                pass

    outcome: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: outcome.update(state=long(return_state=True)))
    runner.start()
    while len(steps) < 3:
        time.sleep(0.01)
    answer = client.execute(
        documents.CANCEL_FLOW_RUN, {"input": {"flow_run_id": str(flow_run_ids[0])}}
    )["cancel_flow_run"]
    assert answer["state"]["name"] == "Cancelling"
    runner.join(timeout=30)
    state = outcome["state"]
    assert state.is_cancelled() and len(steps) < 500
    run = recorded(client, state)
    assert [s.name for s in run.states][-2:] == ["Cancelling", "Cancelled"]
    assert all(v.state.is_final() for v in run.get_all_task_runs())


def test_a_cancel_after_the_last_heartbeat_still_ends_cancelled(
    client: CountingClient, flow: Any
) -> None:
    from sdk.runtime.context import FLOW_RUN

    @flow
    def quick() -> int:
        ctx = FLOW_RUN.get()
        assert ctx is not None
        client.execute(documents.CANCEL_FLOW_RUN, {"input": {"flow_run_id": str(ctx.flow_run_id)}})
        return 1  # no task call and no heartbeat notice the cancellation before the end

    state = quick(return_state=True)
    assert state.is_cancelled()
    assert recorded(client, state).state.is_cancelled()
