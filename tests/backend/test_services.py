"""Late marking and crash detection: the passes with a fixed clock, the replica lock, and
the services running inside a live server with short settings."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from backend import models, services
from backend.database.engine import Database
from backend.settings import Settings
from tests.conftest import Server

pytestmark = pytest.mark.anyio

NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


def ago(seconds: float) -> dt.datetime:
    return NOW - dt.timedelta(seconds=seconds)


async def _state(db: Database, table: str, id: Any) -> str:
    async with db.connect() as conn:
        row = await models.read_row(conn, table, id)
    assert row is not None
    return str(row.state)


async def test_scheduled_runs_past_their_start_become_late(db: Database) -> None:
    async with db.begin() as conn:
        await models.create_flow(conn, name="f")
        overdue = await models.create_flow_run(
            conn, flow_name="f", scheduled_start_time=ago(20), now=ago(30)
        )
        recent = await models.create_flow_run(
            conn, flow_name="f", scheduled_start_time=ago(5), now=ago(30)
        )
        finished = await models.create_flow_run(
            conn, flow_name="f", scheduled_start_time=ago(60), now=ago(60)
        )
        await models.set_flow_run_state(conn, finished.id, 1, {"type": "CANCELLED"}, now=ago(59))
        late = await models.mark_late_runs(conn, late_after=dt.timedelta(seconds=15), now=NOW)
    assert late == [overdue.id]
    assert await _state(db, "flow_run", overdue.id) == "Late"
    assert await _state(db, "flow_run", recent.id) == "Scheduled"
    assert await _state(db, "flow_run", finished.id) == "Cancelled"
    async with db.connect() as conn:
        history = await models.list_rows(
            conn,
            "flow_run_state",
            where={"flow_run_id": {"_eq": overdue.id}},
            order_by=[{"version": "asc"}],
        )
        again = await models.mark_late_runs(conn, late_after=dt.timedelta(seconds=15), now=NOW)
    assert [(h.state, h.version) for h in history] == [("Scheduled", 1), ("Late", 2)]
    assert again == []  # Late is not Scheduled: marked once


async def test_silent_running_runs_crash_with_their_unfinished_task_runs(db: Database) -> None:
    async with db.begin() as conn:
        await models.create_flow(conn, name="f")
        runs = {}
        for name in ("silent", "beating", "never_beat"):
            run = await models.create_flow_run(conn, flow_name="f", now=ago(300))
            await models.set_flow_run_state(conn, run.id, 1, {"type": "RUNNING"}, now=ago(200))
            runs[name] = run.id
        await models.record_heartbeat(conn, "flow_run", runs["silent"], now=ago(100))
        await models.record_heartbeat(conn, "flow_run", runs["beating"], now=ago(10))
        working = await models.get_or_create_task_run(
            conn, flow_run_id=runs["silent"], task_slug="a-1", now=ago(150)
        )
        done = await models.get_or_create_task_run(
            conn, flow_run_id=runs["silent"], task_slug="b-1", now=ago(150)
        )
        await models.set_task_run_state(conn, working.id, 1, {"type": "RUNNING"}, now=ago(140))
        await models.set_task_run_state(conn, done.id, 1, {"type": "RUNNING"}, now=ago(140))
        await models.set_task_run_state(conn, done.id, 2, {"type": "COMPLETED"}, now=ago(130))
        crashed = await models.mark_crashed_runs(conn, timeout=dt.timedelta(seconds=90), now=NOW)
    assert sorted(crashed) == sorted([runs["silent"], runs["never_beat"]])
    assert await _state(db, "flow_run", runs["beating"]) == "Running"
    assert await _state(db, "task_run", working.id) == "Crashed"
    assert await _state(db, "task_run", done.id) == "Completed"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_one_replica_at_a_time_runs_the_services(db: Database) -> None:
    settings = Settings(database_url=db.url)
    async with db.begin() as holder:
        assert await models.try_services_lock(holder)
        other = Database(db.url)
        try:
            assert await services.run_once(other, settings) == services.Round(ran=False)
        finally:
            await other.dispose()
    assert (await services.run_once(db, settings)).ran


def _wait_for(server: Server, run_id: str, state: str) -> None:
    deadline = time.monotonic() + 10
    query = "query ($id: uuid!) { flow_run_by_pk(id: $id) { state } }"
    while server.data(query, {"id": run_id})["flow_run_by_pk"]["state"] != state:
        assert time.monotonic() < deadline, f"flow run never became {state}"
        time.sleep(0.05)


def test_the_server_runs_the_services(database_url: str) -> None:
    from tests.backend.api.test_mutations import create_flow, create_run, propose, task_run

    server = Server(database_url).start(
        run_services=True,
        services_interval_seconds=0.05,
        late_after_seconds=0.2,
        heartbeat_timeout_seconds=0.5,
    )
    try:
        create_flow(server, name="f")
        waiting = create_run(server, flow_name="f")
        running = create_run(server, flow_name="f")
        propose(server, "flow", running, 1, type="RUNNING")
        task = task_run(server, flow_run_id=running, task_slug="a-1")
        _wait_for(server, waiting, "Late")
        _wait_for(server, running, "Crashed")
        query = "query ($id: uuid!) { task_run_by_pk(id: $id) { state } }"
        assert server.data(query, {"id": task["id"]})["task_run_by_pk"]["state"] == "Crashed"
    finally:
        server.stop()
