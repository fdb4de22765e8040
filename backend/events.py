"""The event hub: one listener per server process, fanning run events out to subscribers.

Every state history row and log record is announced as its transaction commits (migration
0006). The hub
listens for the whole process and hands each subscriber the events of the flow run it
watches, one list per transaction (PostgreSQL) or per read of the outbox (SQLite), so a
subscriber sees the end of a flow run together with what ended with it:

- PostgreSQL: a connection of its own LISTENs on ``runview_events``; each notification names
  a history table, the transaction, the flow run and row ids. Notifications of flow runs
  nobody watches are dropped unread; the rest are read in one batch of at most two
  statements. A subscriber on any replica sees every change made through any other.
- SQLite: the outbox ``run_event`` is read past the last ``seq`` seen, every
  ``poll_seconds`` while anyone watches (so writes by other processes on the file count too).

Subscribers are bounded: each has a buffer of ``buffer`` transactions; one that falls that
far behind is closed with ``SubscriberTooSlow`` rather than holding events in memory. A lost
PostgreSQL connection closes every subscriber with ``EventsInterrupted`` (events in between
would be lost unseen) and the hub listens again as soon as it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence

import psycopg
from sqlalchemy.engine import make_url

from backend.database.engine import Database
from backend.models import events
from backend.models.events import Announced, Event, RunEvent

logger = logging.getLogger("runview.events")

CHANNEL = "runview_events"
_RECONNECT_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)
_OUTBOX_BATCH = 5_000  # outbox rows read at once


class SubscriberTooSlow(Exception):
    """The subscriber left more than its buffer of events unread."""


class EventsInterrupted(Exception):
    """The hub lost its connection to the database: events may have been missed."""


@dataclasses.dataclass(eq=False)
class Watcher:
    """One subscriber's buffer of the events of one flow run."""

    flow_run_id: uuid.UUID | None  # None: every flow run's own states
    buffer: int
    queue: asyncio.Queue[list[Event] | Exception] = dataclasses.field(init=False)
    closed: Exception | None = None

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.buffer + 1)  # + 1: room for the reason it closed

    def put(self, batch: list[Event]) -> None:
        if self.closed is not None:
            return
        if self.queue.qsize() >= self.buffer:
            self.close(
                SubscriberTooSlow(
                    f"This subscriber left {self.buffer} transactions of events unread and"
                    " was closed (RUNVIEW_SUBSCRIPTION_BUFFER); subscribe again to go on."
                )
            )
            return
        self.queue.put_nowait(batch)

    def close(self, reason: Exception) -> None:
        if self.closed is None:
            self.closed = reason
            self.queue.put_nowait(reason)

    async def batches(self) -> AsyncIterator[list[Event]]:
        """The events as they come; raises the reason the watcher was closed."""
        while True:
            item = await self.queue.get()
            if isinstance(item, Exception):
                raise item
            yield item


class EventHub:
    """The process's listener, started by the first ``watch``; ``stop`` it at the end of the
    app's lifespan."""

    def __init__(self, db: Database, *, buffer: int = 1_000, poll_seconds: float = 0.1):
        self.db = db
        self.buffer = buffer
        self.poll_seconds = poll_seconds
        self._watchers: dict[uuid.UUID | None, set[Watcher]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()  # set while announcements are being received
        self._wake = asyncio.Event()  # SQLite: someone watches now

    def _start(self) -> None:
        """Start listening: on the first watch, so a process nobody subscribes to holds no
        connection for it."""
        listen = self._listen_postgres if self.db.dialect == "postgresql" else self._poll_outbox
        self._task = asyncio.create_task(listen(), name="events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._close_all(EventsInterrupted("The server is stopping."))

    @contextlib.asynccontextmanager
    async def watch(self, flow_run_id: uuid.UUID | None) -> AsyncIterator[Watcher]:
        """A watcher of ``flow_run_id``'s events from now on: every change that commits
        after this is entered reaches it (enter it, then read the current state). ``None``
        watches the states of every flow run (not their task runs, nor logs)."""
        if self._task is None:
            self._start()
        await self.listening()
        watcher = Watcher(flow_run_id, self.buffer)
        self._watchers[flow_run_id].add(watcher)
        self._wake.set()
        try:
            yield watcher
        finally:
            watchers = self._watchers.get(flow_run_id)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._watchers[flow_run_id]

    async def listening(self, timeout: float = 10.0) -> None:
        """Wait until announcements are received (the listener is connected)."""
        try:
            await asyncio.wait_for(self._listening.wait(), timeout)
        except TimeoutError:
            raise EventsInterrupted(
                "The server cannot listen for run events now: the database is unreachable."
            ) from None

    def _deliver(self, batches: Sequence[list[Event]]) -> None:
        for batch in batches:
            by_run: dict[uuid.UUID, list[Event]] = defaultdict(list)
            for event in batch:
                by_run[event.flow_run_id].append(event)
            for flow_run_id, run_events in by_run.items():
                for watcher in list(self._watchers.get(flow_run_id, ())):
                    watcher.put(run_events)
            if None in self._watchers:
                runs: list[Event] = [
                    e for e in batch if isinstance(e, RunEvent) and e.task_run_id is None
                ]
                for watcher in list(self._watchers[None]) if runs else ():
                    watcher.put(runs)

    def _close_all(self, reason: Exception) -> None:
        for watchers in list(self._watchers.values()):
            for watcher in list(watchers):
                watcher.close(reason)

    async def _read(self, announced: list[tuple[str, Announced]]) -> list[list[Event]]:
        """The events of the watched runs among ``announced`` ((transaction, announcement)
        pairs in order), one list per transaction, in order."""
        every = None in self._watchers
        watched = [
            (t, a)
            for t, a in announced
            if a.flow_run_id in self._watchers or (every and a.kind == "flow_run_state")
        ]
        if not watched:
            return []
        async with self.db.connect() as conn:
            found = await events.read_events(conn, [a for _, a in watched])
        return [
            [found[i] for a in group for i in a.ids if i in found] for _, group in _grouped(watched)
        ]

    # PostgreSQL

    async def _listen_postgres(self) -> None:
        url = make_url(self.db.url).set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    failures = 0
                    await self._receive(conn)
            except (psycopg.Error, OSError) as error:
                was_listening = self._listening.is_set()
                self._listening.clear()
                if was_listening:
                    logger.warning("stopped listening for run events: %s", error)
                    self._close_all(
                        EventsInterrupted(
                            "The server lost its connection to the database and may have"
                            " missed run events; subscribe again."
                        )
                    )
                await asyncio.sleep(_RECONNECT_SECONDS[min(failures, len(_RECONNECT_SECONDS) - 1)])
                failures += 1

    async def _receive(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        while True:
            announced = [_parse(n.payload) async for n in conn.notifies(stop_after=1)]
            # The rest of a transaction's notifications arrive with its first: take what
            # is there now, so a transaction is delivered whole.
            announced += [_parse(n.payload) async for n in conn.notifies(timeout=0.005)]
            try:
                batches = await self._read([a for a in announced if a is not None])
            except Exception:  # a failed read must not stop the listener
                logger.exception("could not read announced run events")
                continue
            self._deliver(batches)

    # SQLite

    async def _poll_outbox(self) -> None:
        after: int | None = None
        while True:
            try:
                async with self.db.connect() as conn:
                    if after is None:
                        after = await events.read_outbox_end(conn)
                        self._listening.set()
                    if self._watchers:
                        read, after = await events.read_outbox(conn, after, _OUTBOX_BATCH)
                    else:
                        read, after = [], await events.read_outbox_end(conn)
                if read:  # committed together or before: one batch
                    self._deliver(await self._read([("read", a) for _, a in read]))
                    continue  # there may be more
            except Exception:  # locked, or gone a moment: the next round reads on from after
                logger.exception("could not read the run events outbox")
            if not self._watchers:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 10 * self.poll_seconds)
            else:
                await asyncio.sleep(self.poll_seconds)


def _parse(payload: str) -> tuple[str, Announced] | None:
    """(transaction, announcement) of ``<table> <transaction> <flow run id> <id> ...``."""
    try:
        kind, transaction, flow_run_id, *ids = payload.split(" ")
        return transaction, Announced(kind, uuid.UUID(flow_run_id), tuple(map(uuid.UUID, ids)))
    except ValueError:
        logger.warning("ignored a malformed run event notification %r", payload[:200])
        return None


def _grouped(
    announced: list[tuple[str, Announced]],
) -> list[tuple[str, list[Announced]]]:
    """Consecutive announcements of one transaction together, in order."""
    groups: list[tuple[str, list[Announced]]] = []
    for transaction, announcement in announced:
        if groups and groups[-1][0] == transaction:
            groups[-1][1].append(announcement)
        else:
            groups.append((transaction, [announcement]))
    return groups
