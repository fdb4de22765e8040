"""The one door under faults: re-sent proposals, poisoned batches, retry policies per run.

Against both real databases: what one database stores, the other must too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from backend import models
from backend.database import tables
from backend.database.engine import Database
from backend.models import Proposed
from backend.orchestration.states import MAX_STATE_BYTES

pytestmark = pytest.mark.anyio

T = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


async def _running_flow_run(db: Database, tasks: int = 0, **task: Any) -> tuple[Any, list[Any]]:
    """A Running flow run with ``tasks`` Pending task runs of task 't'."""
    async with db.begin() as conn:
        await models.create_flow(conn, name="f")
        run = await models.create_flow_run(conn, flow_name="f", now=T)
        await models.set_flow_run_state(conn, run.id, 1, {"type": "RUNNING"}, now=T)
        task_runs = [
            await models.get_or_create_task_run(
                conn, flow_run_id=run.id, task_slug="t", map_index=i, now=T, **task
            )
            for i in range(tasks)
        ]
    return run, task_runs


async def _history(db: Database, task_run_id: uuid.UUID) -> list[str]:
    history = tables.task_run_state
    async with db.connect() as conn:
        rows = await conn.execute(
            sa.select(history.c.state)
            .where(history.c.task_run_id == task_run_id)
            .order_by(history.c.version)
        )
        return list(rows.scalars())


async def test_a_proposal_sent_again_gets_its_first_answer(db: Database) -> None:
    _, [task_run] = await _running_flow_run(db, 1, max_retries=1)
    running = Proposed(task_run.id, 1, {"type": "RUNNING"}, uuid.uuid4())
    failed = Proposed(task_run.id, 2, {"type": "FAILED", "message": "boom"}, uuid.uuid4())
    async with db.begin() as conn:
        first = await models.set_states(conn, "task_run", [running])
    async with db.begin() as conn:  # the answer was lost; the client sends it again
        again = await models.set_states(conn, "task_run", [running])
    assert again == first and first[0].status.value == "ACCEPTED"
    async with db.begin() as conn:  # an answer with a reason keeps it
        first = await models.set_states(conn, "task_run", [failed])
    async with db.begin() as conn:
        again = await models.set_states(conn, "task_run", [failed, failed])
    assert again == first * 2
    assert first[0].message == "attempt 1 failed with 1 retries allowed."
    assert first[0].state is not None and first[0].state["name"] == "AwaitingRetry"
    assert await _history(db, task_run.id) == ["Pending", "Running", "AwaitingRetry"]


async def test_a_proposal_id_only_answers_for_its_own_run_and_version(db: Database) -> None:
    _, [one, two] = await _running_flow_run(db, 2)
    reused = uuid.uuid4()
    async with db.begin() as conn:
        changes = await models.set_states(
            conn,
            "task_run",
            [
                Proposed(one.id, 1, {"type": "RUNNING"}, reused),
                Proposed(two.id, 1, {"type": "RUNNING"}, reused),  # another run: judged
                Proposed(one.id, 1, {"type": "COMPLETED"}, uuid.uuid4()),  # stale, no repeat
            ],
        )
    assert [c.status.value for c in changes] == ["ACCEPTED", "ACCEPTED", "REJECTED"]
    assert "version 1 is stale" in (changes[2].message or "")


async def test_a_stale_proposal_without_an_id_is_still_rejected(db: Database) -> None:
    _, [task_run] = await _running_flow_run(db, 1)
    async with db.begin() as conn:
        await models.set_task_run_state(conn, task_run.id, 1, {"type": "RUNNING"})
        change = await models.set_task_run_state(conn, task_run.id, 1, {"type": "RUNNING"})
    assert change.status.value == "REJECTED"
    assert await _history(db, task_run.id) == ["Pending", "Running"]


POISONS = {
    "nul-in-message": (
        {"type": "FAILED", "message": "bad \x00 byte"},
        "state.message 'bad \\x00 byte' holds a NUL character",
    ),
    "nul-in-a-details-key": (
        {"type": "FAILED", "details": {"k\x00": 1}},
        "a key of state.details 'k\\x00' holds a NUL character",
    ),
    "lone-surrogate": (
        {"type": "FAILED", "details": {"trace": ["ok", "x\ud800y"]}},
        "state.details.trace[1] 'x\\ud800y' holds a lone surrogate ('\\ud800' at 1)",
    ),
    "expiration-without-offset": (
        {"type": "COMPLETED", "details": {"cache_expiration": "2026-12-01T12:00:00"}},
        "cache_expiration '2026-12-01T12:00:00' has no UTC offset",
    ),
    "expiration-not-a-timestamp": (
        {"type": "COMPLETED", "details": {"cache_expiration": "next tuesday"}},
        "cache_expiration 'next tuesday' is not a timestamp",
    ),
    "oversized": (
        {"type": "FAILED", "message": "x" * MAX_STATE_BYTES},
        f"over the limit of {MAX_STATE_BYTES:,}",
    ),
}


@pytest.mark.parametrize("poison", list(POISONS), ids=list(POISONS))
async def test_a_poisoned_proposal_is_refused_alone(db: Database, poison: str) -> None:
    """Its neighbours, before and after it in the batch, are judged as if it were not there."""
    state, named = POISONS[poison]
    _, runs = await _running_flow_run(db, 3)
    async with db.begin() as conn:
        await models.set_states(
            conn, "task_run", [Proposed(run.id, 1, {"type": "RUNNING"}) for run in runs]
        )
    missing = uuid.uuid4()
    batch = [
        Proposed(runs[0].id, 2, {"type": "COMPLETED"}),
        Proposed(runs[1].id, 2, state),
        Proposed(missing, 1, {"type": "RUNNING"}),
        Proposed(runs[2].id, 2, {"type": "COMPLETED"}),
    ]
    async with db.begin() as conn:
        changes = await models.set_states(conn, "task_run", batch)
    statuses = [c.status.value for c in changes]
    assert statuses == ["ACCEPTED", "REJECTED", "ABORTED", "ACCEPTED"]
    assert named in (changes[1].message or "")
    assert changes[1].state is not None and changes[1].state["name"] == "Running"
    assert changes[2].message == f"task run {str(missing)!r} does not exist."
    assert await _history(db, runs[1].id) == ["Pending", "Running"]
    assert await _history(db, runs[2].id) == ["Pending", "Running", "Completed"]


async def test_a_bad_expiration_stored_earlier_does_not_poison_the_cache(db: Database) -> None:
    """Rows written before expirations were checked are not reusable, and break nothing."""
    run, [done, later] = await _running_flow_run(db, 2, cache_key="k")
    bad = {"type": "COMPLETED", "name": "Completed", "details": {"cache_expiration": "soon"}}
    async with db.begin() as conn:
        await conn.execute(
            sa.update(tables.task_run)
            .where(tables.task_run.c.id == done.id)
            .values(state="Completed", state_type="COMPLETED", serialized_state=bad)
        )
        change = await models.set_task_run_state(conn, later.id, 1, {"type": "RUNNING"})
    assert change.status.value == "ACCEPTED"
    assert change.state is not None and change.state["name"] == "Running"


async def test_a_task_run_keeps_the_retry_policy_it_was_created_with(db: Database) -> None:
    """Two versions of the code run the same task: each run retries by its own policy."""
    run, _ = await _running_flow_run(db)
    async with db.begin() as conn:
        patient = await models.get_or_create_task_run(
            conn, flow_run_id=run.id, task_slug="t", map_index=0, max_retries=2
        )
        # A newer deployment declares no retries; the task row now says 0.
        hasty = await models.get_or_create_task_run(
            conn, flow_run_id=run.id, task_slug="t", map_index=1, max_retries=0
        )
        for task_run in (patient, hasty):
            await models.set_task_run_state(conn, task_run.id, 1, {"type": "RUNNING"})
        failed = {"type": "FAILED", "message": "boom"}
        patient_change = await models.set_task_run_state(conn, patient.id, 2, failed)
        hasty_change = await models.set_task_run_state(conn, hasty.id, 2, failed)
    assert patient_change.state is not None and hasty_change.state is not None
    assert patient_change.state["name"] == "AwaitingRetry"
    assert hasty_change.state["name"] == "Failed"


async def test_mapped_children_get_their_parents_policy(db: Database) -> None:
    run, _ = await _running_flow_run(db)
    async with db.begin() as conn:
        await models.get_or_create_task_run(
            conn, flow_run_id=run.id, task_slug="m", max_retries=3, retry_delay_seconds=1.5
        )
        children = await models.get_or_create_mapped_task_run_children(
            conn, flow_run_id=run.id, task_slug="m", max_map_index=2
        )
        rows = await conn.execute(
            sa.select(tables.task_run.c.max_retries, tables.task_run.c.retry_delay_seconds).where(
                tables.task_run.c.id.in_([child.id for child in children])
            )
        )
        assert set(rows.all()) == {(3, 1.5)}


async def test_a_task_run_cannot_start_while_its_flow_run_is_ending(
    db: Database, database_url: str
) -> None:
    """The door locks the flow run of a task run it judges: a Running proposal waits for
    the transaction that ends the flow run, then sees what it did."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: the two cannot overlap")
    run, [task_run] = await _running_flow_run(db, 1)
    other = Database(database_url)
    try:
        async with db.begin() as ending:
            await models.set_flow_run_state(ending, run.id, 2, {"type": "COMPLETED"})

            async def start() -> Any:
                async with other.begin() as conn:
                    return await models.set_task_run_state(
                        conn, task_run.id, 1, {"type": "RUNNING"}
                    )

            starting = asyncio.create_task(start())
            await asyncio.sleep(0.5)
            assert not starting.done(), "the task run did not wait for its flow run's lock"
        change = await asyncio.wait_for(starting, timeout=10)
    finally:
        await other.dispose()
    # The flow run's end took its unfinished task run with it; starting it is refused.
    assert change.status.value == "REJECTED"
    assert change.state is not None and change.state["name"] == "Crashed"
    assert await _history(db, task_run.id) == ["Pending", "Crashed"]


async def test_the_servers_own_changes_are_judged_by_the_rules(db: Database) -> None:
    """A crashed flow run's cascade is written once per task run; a cancel of a run that is
    over is refused by the rules, not by a check of its own."""
    run, runs = await _running_flow_run(db, 3)
    async with db.begin() as conn:
        await models.set_task_run_state(conn, runs[0].id, 1, {"type": "RUNNING"})
        await models.set_task_run_state(conn, runs[0].id, 2, {"type": "COMPLETED"})
        await models.set_task_run_state(conn, runs[1].id, 1, {"type": "RUNNING"})
        crashed = await models.mark_crashed_runs(
            conn, timeout=dt.timedelta(seconds=90), now=T + dt.timedelta(seconds=91)
        )
        assert crashed == [run.id]
        cancel = await models.cancel_flow_run(conn, run.id)
    assert await _history(db, runs[0].id) == ["Pending", "Running", "Completed"]
    assert await _history(db, runs[1].id) == ["Pending", "Running", "Crashed"]
    assert await _history(db, runs[2].id) == ["Pending", "Crashed"]
    assert cancel.status.value == "REJECTED"
    assert "the run is Crashed, a terminal state" in (cancel.message or "")
