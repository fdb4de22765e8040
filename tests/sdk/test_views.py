"""View behaviour: caching, errors, async twins, snapshots."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from pathlib import Path

import pytest

from sdk import NOT_LOADED, FlowRunView, TaskRunView, documents
from sdk.exceptions import (
    InvalidInput,
    NoResultLocation,
    NotFound,
    ResultNotFound,
    ResultUnreadable,
    RunNotFinished,
)
from tests.sdk.conftest import CountingClient, Recorder


def test_finished_task_runs_are_fetched_once(client: CountingClient, recorder: Recorder) -> None:
    flow_run_id = recorder.flow_run()
    done = recorder.task_run(flow_run_id, "done-1")
    recorder.finish(flow_run_id, done, {"rows": 3})
    working = recorder.task_run(flow_run_id, "working-1")
    recorder.propose([(working, 1, {"type": "RUNNING"})])

    flow_run = FlowRunView.from_flow_run_id(flow_run_id, client=client)
    client.sent.clear()
    first = flow_run.get_task_run("done-1")
    assert client.sent == ["task_run_by_slug"]
    assert flow_run.get_task_run("done-1") is first
    assert flow_run.get_task_run(task_run_id=done) is first
    assert flow_run.get_latest().get_task_run("done-1") is first  # the cache is kept
    assert first.get_latest() is first  # finished: nothing to fetch
    assert client.sent == ["task_run_by_slug", "flow_run"]

    flow_run.get_task_run("working-1")
    flow_run.get_task_run("working-1")  # unfinished: fetched every time
    assert client.sent[-2:] == ["task_run_by_slug", "task_run_by_slug"]

    # get_all_task_runs asks only for the runs it has not cached.
    client.sent.clear()
    views = flow_run.get_all_task_runs()
    assert [v.task_slug for v in views] == ["done-1", "working-1"]
    assert views[0] is first and client.sent == ["task_runs"]


def test_a_result_loads_once_and_none_is_a_result(
    client: CountingClient, recorder: Recorder, tmp_path: Path
) -> None:
    flow_run_id = recorder.flow_run()
    nothing = recorder.task_run(flow_run_id, "nothing-1")
    recorder.finish(flow_run_id, nothing, None)
    view = TaskRunView.from_task_slug("nothing-1", flow_run_id, client=client)
    assert "result not loaded" in repr(view)
    assert view.get_result() is None
    assert "result loaded" in repr(view) and view._result.value is None
    # Loaded once: the stored file can go, the view keeps its result.
    os.remove(view.state.result_ref.location)  # type: ignore[union-attr]
    assert view.get_result() is None
    with pytest.raises(ResultNotFound, match=repr(view.state.result_ref.location)):  # type: ignore[union-attr]
        TaskRunView.from_task_run_id(nothing, client=client).get_result()


def test_bad_input_is_a_clear_error(client: CountingClient, recorder: Recorder) -> None:
    flow_run_id = recorder.flow_run()
    missing = str(uuid.uuid4())
    with pytest.raises(NotFound, match=f"No flow run has the id '{missing}'"):
        TaskRunView.from_task_slug("foo-1", missing, client=client)
    with pytest.raises(NotFound, match=f"Flow run '{flow_run_id}' has no task run 'foo-1'"):
        TaskRunView.from_task_slug("foo-1", flow_run_id, client=client)
    with pytest.raises(NotFound, match="with map_index 3"):
        TaskRunView.from_task_slug("foo-1", flow_run_id, map_index=3, client=client)
    with pytest.raises(InvalidInput, match="'not-a-uuid' is not a flow run id"):
        FlowRunView.from_flow_run_id("not-a-uuid", client=client)
    with pytest.raises(NotFound, match=f"No task run has the id '{missing}'"):
        TaskRunView.from_task_run_id(missing, client=client)
    with pytest.raises(InvalidInput, match="give exactly one of task_slug and task_run_id"):
        FlowRunView.from_flow_run_id(flow_run_id, client=client).get_task_run()


def test_results_of_unfinished_failed_and_corrupt_runs(
    client: CountingClient, recorder: Recorder
) -> None:
    flow_run_id = recorder.flow_run()
    running = recorder.task_run(flow_run_id, "running-1")
    recorder.propose([(running, 1, {"type": "RUNNING"})])
    failed = recorder.task_run(flow_run_id, "failed-1")
    recorder.propose([(failed, 1, {"type": "RUNNING"}), (failed, 2, {"type": "FAILED"})])
    corrupt = recorder.task_run(flow_run_id, "corrupt-1")
    ref = recorder.storage.write("x", flow_run_id=flow_run_id, task_run_id=corrupt)
    Path(ref.location).write_bytes(b"not a pickle")
    recorder.propose([(corrupt, 1, {"type": "COMPLETED", "result": ref.to_dict()})])

    view = TaskRunView.from_task_slug("running-1", flow_run_id, client=client)
    with pytest.raises(RunNotFinished, match="'running-1' of flow run .* is Running, not finished"):
        view.get_result()
    assert view._result.value is NOT_LOADED
    with pytest.raises(NoResultLocation, match="'failed-1' .* finished Failed without a result"):
        TaskRunView.from_task_slug("failed-1", flow_run_id, client=client).get_result()
    with pytest.raises(
        ResultUnreadable, match=f"{ref.location!r} cannot be read with the 'pickle'"
    ):
        TaskRunView.from_task_slug("corrupt-1", flow_run_id, client=client).get_result()


def test_a_mapped_parent_with_an_unfinished_child_loads_nothing(
    client: CountingClient, recorder: Recorder
) -> None:
    flow_run_id = recorder.flow_run()
    children = recorder.mapped(flow_run_id, "inc-1", [1, 2])
    # A third child appears that has not run yet.
    client.execute(
        documents.GET_OR_CREATE_MAPPED_CHILDREN,
        {"input": {"flow_run_id": flow_run_id, "task_slug": "inc-1", "max_map_index": 2}},
    )
    parent = TaskRunView.from_task_slug("inc-1", flow_run_id, client=client)
    assert [child.map_index for child in parent.iter_mapped()] == [0, 1, 2]
    with pytest.raises(RunNotFinished, match=r"'inc-1' of flow run .*, child 2, is Pending"):
        parent.get_result()
    assert parent._result.value is NOT_LOADED
    with pytest.raises(InvalidInput, match="is not a mapped parent"):
        list(TaskRunView.from_task_run_id(children[0], client=client).iter_mapped())


def test_views_are_immutable_snapshots(client: CountingClient, recorder: Recorder) -> None:
    flow_run_id = recorder.flow_run()
    task_run_id = recorder.task_run(flow_run_id, "foo-1")
    view = TaskRunView.from_task_slug("foo-1", flow_run_id, client=client)
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.state = view.state  # type: ignore[misc]
    recorder.finish(flow_run_id, task_run_id, "foobar!")
    assert view.state.name == "Pending"
    latest = view.get_latest()
    assert latest is not view and latest.state.name == "Completed"
    assert repr(latest) == (
        f"TaskRunView(task_run_id='{task_run_id}', task_slug='foo-1', map_index=-1,"
        " state=Completed, result not loaded)"
    )
    assert latest.state.task_run_id == uuid.UUID(task_run_id)
    assert str(latest.state.flow_run_id) == flow_run_id


def test_async_twins(client: CountingClient, recorder: Recorder) -> None:
    flow_run_id = recorder.flow_run()
    recorder.finish(flow_run_id, recorder.task_run(flow_run_id, "foo-1"), "foobar!")
    recorder.mapped(flow_run_id, "inc-1", [1, 2, 3])

    async def inspect() -> tuple[object, ...]:
        view = await TaskRunView.afrom_task_slug("foo-1", flow_run_id, client=client)
        parent = await TaskRunView.afrom_task_slug("inc-1", flow_run_id, client=client)
        flow_run = await FlowRunView.afrom_flow_run_id(flow_run_id, client=client)
        latest = await flow_run.aget_latest()
        task_run = await latest.aget_task_run("foo-1")
        return (
            await view.aget_result(),
            await parent.aget_result(),
            [child.map_index async for child in parent.aiter_mapped()],
            task_run is await flow_run.aget_task_run("foo-1"),
            len(await flow_run.aget_all_task_runs()),
            len(await flow_run.aget_task_run_ids()),
            await flow_run.aget_logs(),
        )

    assert asyncio.run(inspect()) == ("foobar!", [1, 2, 3], [0, 1, 2], True, 5, 5, [])
