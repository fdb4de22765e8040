"""The one door through which a run's state changes: ``set_states`` (and the one-proposal
``set_flow_run_state`` / ``set_task_run_state``).

A batch locks its runs (``FOR UPDATE`` on PostgreSQL, in id order, a task run's flow run
before it; on SQLite the write transaction of ``Database.begin`` already holds the
database's write lock), reads what the rules need (``snapshots``), lets the policy decide
each proposal in order, then writes the accepted states to the run rows and appends them to
the history (``history``), in a fixed number of statements. Every proposal is answered with
the status, the reason and the state now in force, so a client that lost a race learns what
happened instead.

The server's own changes (marking runs Late or Crashed, claims, cancelling, and the task runs
a flow run's end takes with it) are proposals too, made without a version: judged by the
same rules against the state in force.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.database import tables
from backend.database.types import utcnow
from backend.errors import InputError
from backend.models.history import history_row, write_states
from backend.models.snapshots import RunSnapshot, cache_candidates, lock_and_read
from backend.orchestration.rules import (
    FLOW_RUN_POLICY,
    TASK_RUN_POLICY,
    FinishTaskRuns,
    Proposal,
    Status,
)
from backend.orchestration.states import NAMES, TERMINAL, State, StateType

_UNFINISHED = [t.value for t in StateType if t not in TERMINAL]


class Proposed(NamedTuple):
    """One proposal of a batch: the state a client wants for a run it read at ``version``.

    ``proposal_id`` is made by the client. A proposal sent again because its answer was lost
    (a timeout, a restart) is then answered as the first time, instead of being judged
    anew against the state it put the run in: no false REJECTED, no second history row.
    """

    run_id: uuid.UUID
    version: int | None  # None: the server's own proposal, judged against the state in force
    state: Any
    proposal_id: uuid.UUID | None = None


@dataclass(frozen=True)
class StateChange:
    """The answer to one proposal."""

    id: uuid.UUID
    status: Status
    message: str | None
    state: dict[str, Any] | None  # serialized; None only when the run does not exist


async def set_flow_run_state(
    conn: AsyncConnection,
    flow_run_id: uuid.UUID,
    version: int,
    state: Any,
    *,
    now: dt.datetime | None = None,
) -> StateChange:
    """Propose ``state`` (serialized) for a flow run believed to be at ``version``."""
    return (await set_states(conn, "flow_run", [Proposed(flow_run_id, version, state)], now=now))[0]


async def set_task_run_state(
    conn: AsyncConnection,
    task_run_id: uuid.UUID,
    version: int,
    state: Any,
    *,
    now: dt.datetime | None = None,
) -> StateChange:
    """Propose ``state`` (serialized) for a task run believed to be at ``version``."""
    return (await set_states(conn, "task_run", [Proposed(task_run_id, version, state)], now=now))[0]


async def set_states(
    conn: AsyncConnection,
    kind: str,
    batch: Sequence[Proposed | tuple[uuid.UUID, int, Any]],
    *,
    now: dt.datetime | None = None,
) -> list[StateChange]:
    """Judge many proposals, each on its own and in order, in the caller's transaction.

    A fixed number of statements whatever the batch size: one read that locks every run
    named (in id order, so two batches naming the same runs queue rather than deadlock), one
    read of the cache candidates (only when a run proposed Running has a cache key), one of
    earlier answers (only for re-sent proposals), then the write of the runs and their
    history (``write_states``: one statement on PostgreSQL).
    Proposals are decided in order against in-memory snapshots, so a second proposal for the
    same run sees the outcome of the first. A proposal that is malformed or cannot be stored
    is refused on its own; the rest of the batch is judged as if it were not there.
    """
    now = now or utcnow()
    proposals = [Proposed(*proposal) for proposal in batch]
    policy = FLOW_RUN_POLICY if kind == "flow_run" else TASK_RUN_POLICY
    runs = await lock_and_read(conn, kind, sorted({p.run_id for p in proposals}))
    cached = await cache_candidates(conn, runs.values(), proposals, now)
    answered = await _earlier_answers(conn, kind, runs, proposals)
    changes: list[StateChange] = []
    history: list[dict[str, Any]] = []
    ended: dict[FinishTaskRuns, list[uuid.UUID]] = {}  # effect -> flow run ids
    for run_id, version, data, proposal_id in proposals:
        run = runs.get(run_id)
        if run is None:
            message = f"{kind.replace('_', ' ')} {str(run_id)!r} does not exist."
            changes.append(StateChange(run_id, Status.ABORTED, message, None))
            continue
        history_id = _history_id(proposal_id, run_id, version)
        if history_id in answered:
            changes.append(answered[history_id])
            continue
        try:
            proposed = State.parse(data, now)
        except InputError as error:
            changes.append(StateChange(run_id, Status.REJECTED, str(error), run.state.serialize()))
            continue
        hit = cached.get(run.cache_key) if run.cache_key else None
        snapshot = run.snapshot(hit if proposed.type is StateType.RUNNING else None)
        proposal = policy.decide(
            Proposal(run=snapshot, proposed=proposed, version=version, now=now)
        )
        change = StateChange(
            run_id, proposal.status, proposal.reason, proposal.in_force.serialize()
        )
        if proposal.status is Status.ACCEPTED:
            run.accept(proposal.state, now)
            history.append(
                history_row(
                    kind, run_id, proposal.state, run.version, id=history_id, reason=proposal.reason
                )
            )
            for effect in proposal.effects:
                ended.setdefault(effect, []).append(run_id)
            if proposal_id is not None:  # sent twice in one batch: answered once
                answered[history_id] = change
        changes.append(change)
    changed = [run.values() for run in runs.values() if run.changed]
    if changed:
        await write_states(conn, kind, changed, history)
    for effect, flow_run_ids in ended.items():
        await finish_task_runs(conn, flow_run_ids, effect.name, effect.message, now=now)
    return changes


def _history_id(proposal_id: uuid.UUID | None, run_id: uuid.UUID, version: int | None) -> uuid.UUID:
    """The id of the history row an accepted proposal writes.

    With a client-made proposal id it is derived from that id, the run and the version
    proposed from, so a re-sent proposal finds the row the first one wrote, and a client
    that reuses an id for another run or version cannot collide with it.
    """
    if proposal_id is None:
        return uuid.uuid4()
    return uuid.uuid5(proposal_id, f"{run_id}/{version}")


async def _earlier_answers(
    conn: AsyncConnection,
    kind: str,
    runs: dict[uuid.UUID, RunSnapshot],
    proposals: Sequence[Proposed],
) -> dict[uuid.UUID, StateChange]:
    """The answers already given to proposals of this batch that were accepted before, by
    the history row id each wrote.

    Only a proposal whose version is stale can have been accepted (acceptance moves the run
    past it), so a batch of fresh proposals costs no query here.
    """
    ids: dict[uuid.UUID, uuid.UUID] = {}  # history id -> run id
    for run_id, version, _, proposal_id in proposals:
        run = runs.get(run_id)
        if proposal_id is not None and run is not None and version != run.version:
            ids[_history_id(proposal_id, run_id, version)] = run_id
    if not ids:
        return {}
    history = tables.metadata.tables[f"{kind}_state"]
    run_column = history.c[f"{kind}_id"]
    rows = await conn.execute(
        sa.select(history.c.id, run_column, history.c.reason, history.c.serialized_state).where(
            history.c.id.in_(ids)
        )
    )
    return {
        row.id: StateChange(row[1], Status.ACCEPTED, row.reason, row.serialized_state)
        for row in rows
        if ids[row.id] == row[1]
    }


async def lock_unfinished(
    conn: AsyncConnection,
    table: sa.Table,
    where: Any,
    *,
    order_by: Any = None,
    limit: int | None = None,
) -> list[uuid.UUID]:
    """Lock the unfinished runs of ``table`` matching ``where`` that no other transaction
    holds; their ids.

    ``SKIP LOCKED`` (PostgreSQL) passes over rows another transaction holds, which is how
    several agents claim runs at once, and replicas' services mark runs, without waiting on
    each other or changing a run twice. The door locks the rows again (a no-op) when the
    caller proposes their new states.
    """
    statement = (
        sa.select(table.c.id)
        .where(where, table.c.state_type.in_(_UNFINISHED))
        .order_by(order_by if order_by is not None else table.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await conn.execute(statement)).scalars().all())


async def propose_as_server(
    conn: AsyncConnection,
    kind: str,
    ids: Sequence[uuid.UUID],
    name: str,
    message: str,
    *,
    now: dt.datetime | None = None,
) -> list[StateChange]:
    """Propose the state ``name`` for the runs ``ids`` as the server (no version): Late,
    Crashed, a claim's Pending, a cascade's Cancelled. The rules judge it as any proposal:
    a run that ended meanwhile stays as it is, and a flow run's end takes its task runs."""
    if not ids:
        return []
    state = {"type": NAMES[name].value, "name": name, "message": message}
    return await set_states(conn, kind, [Proposed(id, None, state) for id in ids], now=now)


async def finish_task_runs(
    conn: AsyncConnection,
    flow_run_ids: Sequence[uuid.UUID],
    name: str,
    message: str,
    *,
    now: dt.datetime | None = None,
) -> None:
    """End the unfinished task runs of these flow runs (Cancelled, Crashed).

    Read without a lock: the door locks them, in its order (their flow runs, which the
    caller holds, then them), and refuses any that ended meanwhile.
    """
    task_run = tables.task_run
    unfinished = sa.select(task_run.c.id).where(
        task_run.c.flow_run_id.in_(flow_run_ids), task_run.c.state_type.in_(_UNFINISHED)
    )
    ids = list((await conn.execute(unfinished)).scalars().all())
    await propose_as_server(conn, "task_run", ids, name, message, now=now)
