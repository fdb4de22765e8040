"""The GraphQL query of seed 001, sent verbatim over HTTP to the running server."""

from __future__ import annotations

import re
from typing import Any

import httpx

SEED_QUERY = """
query {
  task_run(where: {flow_run_id: {_eq: "%s"}}) {
    id
    state
    start_time
    task {
      slug
    }
  }
}
"""


def test_seed_query_runs_verbatim_and_answers_in_the_seed_shape(seeded: Any) -> None:
    server, data = seeded
    run_id = data.flow_runs["happy"].id
    response = httpx.post(f"{server.url}/graphql", json={"query": SEED_QUERY % run_id})
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["data"]
    rows = body["data"]["task_run"]
    assert sorted(rows, key=lambda row: row["task"]["slug"]) == [
        {
            "id": str(data.task_runs[f"happy/{slug}/-1"].id),
            "state": "Completed",
            "start_time": start_time,
            "task": {"slug": slug},
        }
        for slug, start_time in [
            ("capitalize-1", "2021-05-12T18:00:02.696849+00:00"),
            ("name-1", "2021-05-12T18:00:01.696849+00:00"),
            ("say_hello-1", "2021-05-12T18:00:03.696849+00:00"),
        ]
    ]
    for row in rows:  # the seed's field order, and its timestamp format
        assert list(row) == ["id", "state", "start_time", "task"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", row["start_time"])


def test_seed_query_over_get(seeded: Any) -> None:
    server, data = seeded
    query = SEED_QUERY % data.flow_runs["sad"].id
    response = httpx.get(f"{server.url}/graphql", params={"query": query})
    assert response.status_code == 200
    states = sorted(row["state"] for row in response.json()["data"]["task_run"])
    assert states == ["Completed", "Completed", "Failed"]
