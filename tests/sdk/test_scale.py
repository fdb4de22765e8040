"""A mapped parent with 10,000 children loads with a fixed number of GraphQL requests."""

from __future__ import annotations

from typing import Any

import pytest

from sdk import FlowRunView, TaskRunView
from sdk.views import PAGE_SIZE
from tests.sdk.conftest import CountingClient, Recorder

CHILDREN = 10_000


@pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)
@pytest.mark.parametrize("client", ["http"], indirect=True)
def test_ten_thousand_children_in_a_fixed_number_of_requests(
    client: CountingClient, recorder: Recorder
) -> None:
    flow_run_id = recorder.flow_run("big")
    recorder.mapped(flow_run_id, "inc-1", [i + 1 for i in range(CHILDREN)])

    client.sent.clear()
    parent = TaskRunView.from_task_slug("inc-1", flow_run_id, client=client)
    assert parent.get_result() == [i + 1 for i in range(CHILDREN)]
    assert client.sent == ["task_run_by_slug", "mapped_results"]

    client.sent.clear()
    indexes = [child.map_index for child in parent.iter_mapped()]
    assert indexes == list(range(CHILDREN))
    assert client.sent == ["mapped_children"] * (CHILDREN // PAGE_SIZE + 1)

    # A flow run view over them: all the task runs in one request, then none again.
    flow_run = FlowRunView.from_flow_run_id(flow_run_id, client=client)
    client.sent.clear()
    assert len(flow_run.get_all_task_runs()) == CHILDREN + 1
    assert flow_run.get_task_run("inc-1", map_index=9_999).map_index == 9_999
    assert client.sent == ["task_runs"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("client", ["http"], indirect=True)
def test_mapping_ten_thousand_items_batches_its_requests(
    client: CountingClient, tmp_path: Any
) -> None:
    from sdk import flow, task

    @task
    def inc(x: int) -> int:
        return x + 1

    @flow(client=client, result_storage=str(tmp_path / "{task_run_id}"))
    def big() -> list[int]:
        return inc.map(range(CHILDREN)).result()

    client.sent.clear()
    state = big(return_state=True)
    assert state.result() == [i + 1 for i in range(CHILDREN)]
    assert client.sent.count("get_or_create_mapped_task_run_children") == 1
    # Two proposals per child (Running, Completed): 20,000 states in far fewer requests.
    requests = client.sent.count("set_task_run_states")
    assert requests < CHILDREN // 5, requests
    assert client.sent.count("get_or_create_task_run") == 1  # the parent; children come in bulk
    parent = TaskRunView.from_task_slug("inc-1", state.flow_run_id, client=client)
    assert parent.state.is_completed() and len(parent.get_result()) == CHILDREN
