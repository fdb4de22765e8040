"""The examples of seed 001 that need no runtime, word for word apart from import names,
against the real server over HTTP and embedded, on PostgreSQL and SQLite."""

from __future__ import annotations

from sdk import FlowRunView, TaskRunView, documents
from tests.sdk.conftest import CountingClient, Recorder


def test_foo_1_get_result_gives_foobar(client: CountingClient, recorder: Recorder) -> None:
    flow_run_id = recorder.flow_run()
    recorder.finish(flow_run_id, recorder.task_run(flow_run_id, "foo-1"), "foobar!")

    task_run = TaskRunView.from_task_slug("foo-1", flow_run_id=flow_run_id, client=client)
    assert task_run.get_result() == "foobar!"
    assert (task_run.task_slug, task_run.name, task_run.map_index) == ("foo-1", "foo", -1)
    assert task_run.state.is_completed() and str(task_run.flow_run_id) == flow_run_id


def test_mapped_inc_results(client: CountingClient, recorder: Recorder) -> None:
    flow_run_id = recorder.flow_run("example-mapped")
    recorder.mapped(flow_run_id, "inc-1", [x + 1 for x in [0, 1, 2, 3, 4, 5]])

    inc_parent = TaskRunView.from_task_slug("inc-1", flow_run_id=flow_run_id, client=client)
    assert inc_parent.get_result() == [1, 2, 3, 4, 5, 6]

    inc_child = TaskRunView.from_task_slug(
        "inc-1", flow_run_id=flow_run_id, map_index=2, client=client
    )
    assert inc_child.get_result() == 3

    children = list(inc_parent.iter_mapped())
    assert [child.map_index for child in children] == [0, 1, 2, 3, 4, 5]
    assert [child.get_result() for child in children] == [1, 2, 3, 4, 5, 6]


def test_flow_run_view(client: CountingClient, recorder: Recorder) -> None:
    flow_run_id = recorder.flow_run("hello")
    for slug, value in [("name-1", "marvin"), ("capitalize-1", "Marvin")]:
        recorder.finish(flow_run_id, recorder.task_run(flow_run_id, slug), value)
    pending = recorder.task_run(flow_run_id, "say_hello-1")
    client.execute(
        documents.WRITE_RUN_LOGS,
        {
            "input": {
                "logs": [
                    {"flow_run_id": flow_run_id, "level": 20, "name": "flow", "message": "started"},
                    {
                        "flow_run_id": flow_run_id,
                        "task_run_id": pending,
                        "level": 30,
                        "name": "task",
                        "message": "careful",
                    },
                ]
            }
        },
    )

    flow_run = FlowRunView.from_flow_run_id(flow_run_id, client=client)
    assert (flow_run.flow_name, flow_run.state.name) == ("hello", "Running")
    assert [state.name for state in flow_run.states] == ["Scheduled", "Running"]
    assert flow_run.get_task_run("capitalize-1").get_result() == "Marvin"
    assert flow_run.get_task_run(task_run_id=pending).state.name == "Pending"
    slugs = [view.task_slug for view in flow_run.get_all_task_runs()]
    assert slugs == ["capitalize-1", "name-1", "say_hello-1"]
    assert len(flow_run.get_task_run_ids()) == 3
    assert [(log.level, log.message) for log in flow_run.get_logs()] == [
        (20, "started"),
        (30, "careful"),
    ]
    assert [str(log.task_run_id) if log.task_run_id else None for log in flow_run.get_logs()] == [
        None,
        pending,
    ]

    recorder.propose_flow(flow_run_id, 2, {"type": "COMPLETED"})
    latest = flow_run.get_latest()
    assert latest is not flow_run and latest.state.is_completed()
    assert flow_run.state.name == "Running"  # the old snapshot does not change
