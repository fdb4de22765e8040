"""Run logs are shipped in batches the server takes: at most 1,000 records and 4 MiB of JSON
a request, so 1,000 records of 100,000 characters each (a run's messages are cut there) are
never one request over the server's 10 MiB body limit, which would lose them all."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sdk import Client
from sdk.runtime import logs
from sdk.runtime.logs import LogShipper
from tests.backend.api.test_mutations import create_flow, create_run
from tests.conftest import Server


def record(flow_run_id: str, message: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "flow_run_id": flow_run_id,
        "task_run_id": None,
        "timestamp": "2026-12-01T12:00:00+00:00",
        "level": 20,
        "name": "runview.test",
        "message": message,
    }


def test_batches_hold_at_most_a_thousand_records_and_four_mebibytes() -> None:
    small = [record(str(uuid.uuid4()), f"line {i}") for i in range(2_500)]
    assert [len(b) for b in logs.batches(small)] == [1_000, 1_000, 500]
    # Non-ASCII is sent escaped: 100,000 'é' are 600,000 bytes of JSON.
    big = [record(str(uuid.uuid4()), "é" * 100_000) for _ in range(30)]
    sent = list(logs.batches(big))
    assert [r for b in sent for r in b] == big
    assert all(len(json.dumps(b)) <= logs.BATCH_BYTES for b in sent)
    assert len(sent) == 5  # six records of 600 KB a batch
    huge = record(str(uuid.uuid4()), "x" * (logs.BATCH_BYTES + 1))
    assert list(logs.batches([huge, *small[:2]])) == [[huge], small[:2]]


def test_a_thousand_records_of_a_hundred_thousand_characters_are_all_stored(
    server: Server,
) -> None:
    create_flow(server, name="chatty")
    run = create_run(server, flow_name="chatty")
    client = Client(f"{server.url}/graphql")
    try:
        shipper = LogShipper(client)
        for i in range(1_000):
            shipper.add(record(run, f"{i:04} " + "y" * 99_995))
        shipper.close()
    finally:
        client.close()
    count = server.data(
        "query ($id: uuid!) { log_aggregate(where: {flow_run_id: {_eq: $id}}) "
        "{ aggregate { count } } }",
        {"id": run},
    )
    assert count["log_aggregate"]["aggregate"]["count"] == 1_000
