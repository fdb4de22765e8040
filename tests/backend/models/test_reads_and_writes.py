"""backend.models directly: create, read, list and batched relationship loads."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy.exc

from backend import models
from backend.database.engine import Database
from backend.errors import InputError

pytestmark = pytest.mark.anyio


async def test_create_then_read_and_list(db: Database) -> None:
    async with db.begin() as conn:
        flow = await models.insert_flow(conn, name="hello", entrypoint="hello.py:hello")
        task = await models.insert_task(conn, flow_id=flow.id, slug="say-1", name="say")
        run = await models.insert_flow_run(conn, flow_id=flow.id, parameters={"n": 1})
        await models.insert_task_run(conn, flow_run_id=run.id, task_id=task.id, name="say")
    assert flow.version == 1 and flow.created.tzinfo is dt.UTC
    assert run.state == "Scheduled" and run.state_type == "SCHEDULED"
    assert run.name.startswith("run-") and run.parameters == {"n": 1}

    async with db.connect() as conn:
        assert (await models.read_row(conn, "flow_run", run.id)).parameters == {"n": 1}
        rows = await models.list_rows(conn, "task_run", where={"flow_run_id": {"_eq": run.id}})
        assert [row.name for row in rows] == ["say"]
        assert rows[0].map_index == -1 and rows[0].version == 0
        assert await models.count_rows(conn, "task", where={"slug": {"_like": "say%"}}) == 1


async def test_timestamps_round_trip_as_utc(db: Database) -> None:
    local = dt.datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    async with db.begin() as conn:
        flow = await models.insert_flow(conn, name="tz")
        run = await models.insert_flow_run(conn, flow_id=flow.id, scheduled_start_time=local)
    async with db.connect() as conn:
        stored = (await models.read_row(conn, "flow_run", run.id)).scheduled_start_time
    assert stored == local and stored.tzinfo is dt.UTC and stored.hour == 10


async def test_constraints_are_enforced(db: Database) -> None:
    async with db.begin() as conn:
        flow = await models.insert_flow(conn, name="unique")
        await models.insert_task(conn, flow_id=flow.id, slug="a-1", name="a")
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        async with db.begin() as conn:
            await models.insert_flow(conn, name="unique")
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        async with db.begin() as conn:
            await models.insert_task(conn, flow_id=flow.id, slug="a-1", name="a")
    async with db.connect() as conn:  # nothing half-written
        assert await models.count_rows(conn, "flow") == 1
        assert await models.count_rows(conn, "task") == 1


async def test_load_related_groups_by_parent_and_pages_per_parent(db: Database) -> None:
    async with db.begin() as conn:
        flow = await models.insert_flow(conn, name="f")
        task = await models.insert_task(conn, flow_id=flow.id, slug="t-1", name="t")
        runs = [await models.insert_flow_run(conn, flow_id=flow.id) for _ in range(3)]
        for count, run in zip([0, 2, 5], runs, strict=True):
            for i in range(count):
                await models.insert_task_run(
                    conn, flow_run_id=run.id, task_id=task.id, name="t", map_index=i
                )
    relationship = models.TABLES["flow_run"].relationships["task_runs"]
    keys = [run.id for run in runs]
    async with db.connect() as conn:
        everything = await models.load_related(conn, relationship, keys)
        page = await models.load_related(
            conn, relationship, keys, order_by=[{"map_index": "desc"}], limit=2, offset=1
        )
    assert [len(everything.get(key, [])) for key in keys] == [0, 2, 5]
    assert [[row.map_index for row in page.get(key, [])] for key in keys] == [[], [0], [3, 2]]


async def test_bad_names_and_pages_are_input_errors(db: Database) -> None:
    async with db.connect() as conn:
        with pytest.raises(InputError, match="'nope' is not a table"):
            await models.list_rows(conn, "nope")
        with pytest.raises(InputError, match="'colour' is not a column or relationship of flow"):
            await models.list_rows(conn, "flow", where={"colour": {"_eq": "red"}})
        with pytest.raises(InputError, match="'_regex' is not a comparison operator"):
            await models.list_rows(conn, "flow", where={"name": {"_regex": "x"}})
        with pytest.raises(InputError, match="'sideways' is not an ordering"):
            await models.list_rows(conn, "flow", order_by=[{"name": "sideways"}])
        with pytest.raises(InputError, match="limit must be zero or more; got -1"):
            await models.list_rows(conn, "flow", limit=-1)
    async with db.begin() as conn:
        with pytest.raises(InputError, match=r"\['colour'\] are not columns of flow"):
            await models.insert_flow(conn, name="x", colour="red")
