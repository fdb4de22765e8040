"""Late marking, crash detection and releasing expired claims: the passes with a fixed
clock, the replica lock, and the services running inside a live server with short
settings."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
import sqlalchemy as sa

from backend import models, services
from backend.database.engine import Database
from backend.models.flow_runs import CLAIM_MESSAGE
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


async def test_a_running_run_claimed_again_is_not_judged_by_an_old_claims_heartbeat(
    db: Database,
) -> None:
    async with db.begin() as conn:
        await models.create_flow(conn, name="f", entrypoint="/x/f.py:f")
        run = await models.create_flow_run(conn, flow_name="f", now=ago(600))
        # An agent claimed it and beat for it, then died; the claim was released, and
        # another agent claimed it and started it 10 s ago.
        await models.claim_flow_runs(conn, limit=1, now=ago(500))
        await models.record_heartbeat(conn, "flow_run", run.id, now=ago(450))
        await models.release_expired_claims(conn, timeout=dt.timedelta(seconds=30), now=ago(400))
        await models.claim_flow_runs(conn, limit=1, now=ago(20))
        await models.set_flow_run_state(conn, run.id, 4, {"type": "RUNNING"}, now=ago(10))
        crashed = await models.mark_crashed_runs(conn, timeout=dt.timedelta(seconds=90), now=NOW)
    assert crashed == []
    assert await _state(db, "flow_run", run.id) == "Running"


async def test_a_claim_whose_agent_is_gone_is_released_and_can_be_claimed_again(
    db: Database,
) -> None:
    settings = Settings(database_url=db.url, claim_timeout_seconds=90)
    async with db.begin() as conn:
        await models.create_flow(conn, name="f", entrypoint="/x/f.py:f")
        abandoned = await models.create_flow_run(conn, flow_name="f", now=ago(400))
        [claimed] = await models.claim_flow_runs(conn, limit=1, now=ago(300))
        beating = await models.create_flow_run(conn, flow_name="f", now=ago(400))
        await models.claim_flow_runs(conn, limit=1, now=ago(300))
        await models.record_heartbeat(conn, "flow_run", beating.id, now=ago(30))
        recent = await models.create_flow_run(conn, flow_name="f", now=ago(400))
        await models.claim_flow_runs(conn, limit=1, now=ago(60))
        # Pending too, but run by the process that created it: no agent's claim.
        await models.create_flow_run(conn, flow_name="f", pending=True, now=ago(300))
    assert claimed.id == abandoned.id and claimed.state_message == CLAIM_MESSAGE

    assert await services.run_once(db, settings, now=NOW) == services.Round(ran=True, released=1)

    async with db.connect() as conn:
        row = await models.read_row(conn, "flow_run", abandoned.id)
        history = await models.list_rows(
            conn,
            "flow_run_state",
            where={"flow_run_id": {"_eq": abandoned.id}},
            order_by=[{"version": "asc"}],
        )
    assert row is not None and (row.state, row.state_type) == ("Scheduled", "SCHEDULED")
    assert row.state_message == (
        "The claim expired: the agent that claimed it showed no sign of life for 90 s;"
        " another agent may claim it."
    )
    assert [h.state for h in history] == ["Scheduled", "Pending", "Scheduled"]
    for other in (beating.id, recent.id):
        assert await _state(db, "flow_run", other) == "Pending"
    async with db.begin() as conn:
        again = await models.claim_flow_runs(conn, limit=10, now=NOW)
    assert [r.id for r in again] == [abandoned.id]
    assert await services.run_once(db, settings, now=NOW) == services.Round(ran=True)


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
    deadline = time.monotonic() + 30  # the services run every 0.05 s; a busy box is slow
    query = "query ($id: uuid!) { flow_run_by_pk(id: $id) { state } }"
    while server.data(query, {"id": run_id})["flow_run_by_pk"]["state"] != state:
        assert time.monotonic() < deadline, f"flow run never became {state}"
        time.sleep(0.05)


def test_the_server_runs_the_services(database_url: str) -> None:
    from tests.backend.api.test_mutations import (
        create_flow,
        create_run,
        history,
        propose,
        task_run,
    )

    server = Server(database_url).start(
        run_services=True,
        services_interval_seconds=0.05,
        late_after_seconds=0.2,
        heartbeat_timeout_seconds=0.5,
        claim_timeout_seconds=0.5,
    )
    try:
        create_flow(server, name="f")
        waiting = create_run(server, flow_name="f")
        running = create_run(server, flow_name="f")
        propose(server, "flow", running, 1, type="RUNNING")
        task = task_run(server, flow_run_id=running, task_slug="a-1")
        create_flow(server, name="g", entrypoint="/x/g.py:g")
        claimed = create_run(server, flow_name="g")
        claim = "mutation { claim_flow_runs(input: {limit: 1}) { flow_runs { id } } }"
        assert server.data(claim)["claim_flow_runs"]["flow_runs"] == [{"id": claimed}]
        _wait_for(server, waiting, "Late")
        _wait_for(server, running, "Crashed")
        query = "query ($id: uuid!) { task_run_by_pk(id: $id) { state } }"
        assert server.data(query, {"id": task["id"]})["task_run_by_pk"]["state"] == "Crashed"
        _wait_for(server, claimed, "Late")  # released to Scheduled, then Late: it is overdue
        states = [s for s, _, _ in history(server, "flow_run", claimed)]
        # (Late may come before the claim too, on a slow machine.)
        assert states[states.index("Pending") :] == ["Pending", "Scheduled", "Late"], states
    finally:
        server.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlites_run_events_outbox_keeps_the_newest(db: Database) -> None:
    async with db.begin() as conn:
        await models.create_flow(conn, name="f")
        for _ in range(3):  # each Scheduled state is announced
            newest = await models.create_flow_run(conn, flow_name="f")
        assert await models.prune_outbox(conn, keep=1) == 2
        assert await models.prune_outbox(conn, keep=1) == 0  # never the newest
        kept = (await conn.execute(sa.text("SELECT flow_run_id FROM run_event"))).all()
    assert [row[0] for row in kept] == [newest.id.hex]
    assert (await services.run_once(db, Settings())).ran  # which prunes it too
