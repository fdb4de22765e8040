"""The one door against a real database: cache expiry, history, and the run row."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from backend import models
from backend.database.engine import Database

pytestmark = pytest.mark.anyio

T = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T + dt.timedelta(seconds=seconds)


async def _completed_with_cache(db: Database, expiration: dt.datetime | None) -> uuid.UUID:
    """A flow run with one task run completed under cache key 'k'; returns the flow run id."""
    async with db.begin() as conn:
        await models.create_flow(conn, name="f")
        run = await models.create_flow_run(conn, flow_name="f", now=at(0))
        await models.set_flow_run_state(conn, run.id, 1, {"type": "RUNNING"}, now=at(1))
        first = await models.get_or_create_task_run(
            conn, flow_run_id=run.id, task_slug="t-1", cache_key="k", now=at(1)
        )
        await models.set_task_run_state(conn, first.id, 1, {"type": "RUNNING"}, now=at(2))
        details = {"cache_expiration": expiration.isoformat()} if expiration else {}
        completed = {
            "type": "COMPLETED",
            "result": {"location": "file:///r/1", "serializer": "pickle"},
            "details": details,
        }
        change = await models.set_task_run_state(conn, first.id, 2, completed, now=at(3))
        assert change.status.value == "ACCEPTED"
    return run.id


@pytest.mark.parametrize(
    ("expiration", "cached"),
    [(None, True), (at(3600), True), (at(10), False)],
    ids=["never-expires", "not-yet-expired", "expired"],
)
async def test_a_cache_hit_depends_on_its_expiration(
    db: Database, expiration: dt.datetime | None, cached: bool
) -> None:
    run_id = await _completed_with_cache(db, expiration)
    async with db.begin() as conn:
        second = await models.get_or_create_task_run(
            conn, flow_run_id=run_id, task_slug="t-2", cache_key="k", now=at(20)
        )
        change = await models.set_task_run_state(
            conn, second.id, 1, {"type": "RUNNING"}, now=at(20)
        )
    assert change.state is not None
    if cached:
        assert (change.state["name"], change.state["result"]) == (
            "Cached",
            {"location": "file:///r/1", "serializer": "pickle"},
        )
    else:
        assert change.state["name"] == "Running" and change.state["result"] is None


async def test_the_run_row_follows_its_states(db: Database) -> None:
    async with db.begin() as conn:
        await models.create_flow(conn, name="f")
        run = await models.create_flow_run(conn, flow_name="f", now=at(0))
        for version, (state, second) in enumerate(
            [("RUNNING", 1), ("PAUSED", 2), ("RUNNING", 3), ("COMPLETED", 4)], start=1
        ):
            await models.set_flow_run_state(conn, run.id, version, {"type": state}, now=at(second))
        row = await models.read_row(conn, "flow_run", run.id)
        history = await models.list_rows(
            conn,
            "flow_run_state",
            where={"flow_run_id": {"_eq": run.id}},
            order_by=[{"version": "asc"}],
        )
    assert row is not None
    assert (row.state, row.version) == ("Completed", 5)
    assert (row.start_time, row.end_time) == (at(1), at(4))  # the first RUNNING, the end
    assert row.serialized_state["name"] == "Completed"
    assert [(h.state, h.version, h.timestamp) for h in history] == [
        ("Scheduled", 1, at(0)),
        ("Running", 2, at(1)),
        ("Paused", 3, at(2)),
        ("Running", 4, at(3)),
        ("Completed", 5, at(4)),
    ]


async def test_a_batch_writes_every_value_as_given(db: Database) -> None:
    """The write (one JSON-parameter statement on PostgreSQL, executemany on SQLite) keeps
    microseconds, SQL NULLs, text beyond ASCII and integers beyond 64 bits."""
    when = T.replace(microsecond=123_456)
    async with db.begin() as conn:
        await models.create_flow(conn, name="f")
        run = await models.create_flow_run(conn, flow_name="f", now=at(0))
        await models.set_flow_run_state(conn, run.id, 1, {"type": "RUNNING"}, now=at(0))
        ids = [
            (await models.get_or_create_task_run(conn, flow_run_id=run.id, task_slug=f"t-{i}")).id
            for i in range(3)
        ]
        running = [(id, 1, {"type": "RUNNING"}) for id in ids]
        await models.set_states(conn, "task_run", running, now=when)
        finished = [
            (ids[0], 2, {"type": "COMPLETED", "details": {"n": 2**70}, "message": "fin ✓"}),
            (ids[1], 2, {"type": "FAILED", "message": None}),
            (ids[2], 2, {"type": "COMPLETED", "result": {"location": "/r", "serializer": "json"}}),
        ]
        changes = await models.set_states(conn, "task_run", finished, now=at(5))
        rows = {id: await models.read_row(conn, "task_run", id) for id in ids}
        history = await models.list_rows(conn, "task_run_state", where={"version": {"_eq": 3}})
    assert [c.status.value for c in changes] == ["ACCEPTED"] * 3
    first, failed, with_result = (rows[id] for id in ids)
    assert first is not None and failed is not None and with_result is not None
    assert (first.start_time, first.end_time, first.run_count) == (when, at(5), 1)
    assert first.state_message == "fin ✓" and first.serialized_state["details"] == {"n": 2**70}
    assert failed.state_message is None and failed.serialized_state["result"] is None
    assert with_result.serialized_state["result"] == {"location": "/r", "serializer": "json"}
    assert {h.task_run_id: (h.state, h.message, h.result, h.details) for h in history} == {
        ids[0]: ("Completed", "fin ✓", None, {"n": 2**70}),
        ids[1]: ("Failed", None, None, {}),
        ids[2]: ("Completed", None, {"location": "/r", "serializer": "json"}, {}),
    }
