"""Inspecting task runs and their results, end to end.

Records a flow run the way a runtime does (through the GraphQL mutations: a task "foo" that
returns "foobar!", and "inc" mapped over [0..5]), with results written to your own storage,
then inspects it with TaskRunView: a result, a mapped parent's list, one child.

    python examples/seed_task_results.py                      # embedded: no server needed
    RUNVIEW_API_URL=http://127.0.0.1:4200/graphql python examples/seed_task_results.py
"""

from __future__ import annotations

import uuid
from typing import Any

from sdk import Client, ResultStorage, TaskRunView, documents


def record(client: Client, storage: ResultStorage) -> str:
    """A flow run with foo-1 completed and inc-1 mapped over [0..5]; its id."""
    client.execute(documents.CREATE_FLOW, {"input": {"name": "example-mapped"}})
    run = client.execute(
        documents.CREATE_FLOW_RUN,
        {"input": {"flow_name": "example-mapped", "idempotency_key": str(uuid.uuid4())}},
    )["create_flow_run"]["id"]
    set_flow_state(client, run, 1, {"type": "RUNNING"})

    def task_run(slug: str) -> str:
        answer = client.execute(
            documents.GET_OR_CREATE_TASK_RUN, {"input": {"flow_run_id": run, "task_slug": slug}}
        )
        return str(answer["get_or_create_task_run"]["id"])

    def complete(task_run_id: str, version: int, value: Any) -> dict[str, Any]:
        ref = storage.write(value, flow_run_id=run, task_run_id=task_run_id)
        state = {"type": "COMPLETED", "result": ref.to_dict()}
        return {"task_run_id": task_run_id, "version": version, "state": state}

    foo = task_run("foo-1")
    set_task_states(client, [{"task_run_id": foo, "version": 1, "state": {"type": "RUNNING"}}])
    set_task_states(client, [complete(foo, 2, "foobar!")])

    task_run("inc-1")
    children = client.execute(
        documents.GET_OR_CREATE_MAPPED_CHILDREN,
        {"input": {"flow_run_id": run, "task_slug": "inc-1", "max_map_index": 5}},
    )["get_or_create_mapped_task_run_children"]["ids"]
    set_task_states(
        client, [complete(c, 1, x + 1) for c, x in zip(children, range(6), strict=True)]
    )
    set_flow_state(client, run, 2, {"type": "COMPLETED"})
    return str(run)


def set_flow_state(client: Client, run: str, version: int, state: dict[str, Any]) -> None:
    proposal = {"flow_run_id": run, "version": version, "state": state}
    client.execute(documents.SET_FLOW_RUN_STATES, {"input": {"states": [proposal]}})


def set_task_states(client: Client, proposals: list[dict[str, Any]]) -> None:
    client.execute(documents.SET_TASK_RUN_STATES, {"input": {"states": proposals}})


def main() -> None:
    with Client() as client:
        flow_run_id = record(client, ResultStorage())
        print(f"flow run {flow_run_id}")

        task_run = TaskRunView.from_task_slug("foo-1", flow_run_id=flow_run_id, client=client)
        print("foo-1:", task_run.get_result())

        inc_parent = TaskRunView.from_task_slug("inc-1", flow_run_id=flow_run_id, client=client)
        print("inc-1:", inc_parent.get_result())

        inc_child = TaskRunView.from_task_slug(
            "inc-1", flow_run_id=flow_run_id, map_index=2, client=client
        )
        print("inc-1[2]:", inc_child.get_result())

        for child_task_run in inc_parent.iter_mapped():
            print(f"  child {child_task_run.map_index}: {child_task_run.get_result()}")


if __name__ == "__main__":
    main()
