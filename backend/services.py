"""Background services of the server process: Late marking, crash detection,
releasing the claims of agents that are gone, and (SQLite) pruning the run events outbox.

Every ``services_interval_seconds`` each replica tries the services' lock; the one that
gets it runs the three passes in one transaction, the others skip that round. A failed
round is logged and the next one runs as usual: a database hiccup must not stop the
services.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from backend import models
from backend.database.engine import Database, DatabaseUnavailable
from backend.settings import Settings

logger = logging.getLogger("runview.services")


@dataclass(frozen=True)
class Round:
    """What one round of the services did; ``ran`` is False if another replica had it."""

    ran: bool
    late: int = 0
    crashed: int = 0
    released: int = 0


async def run_once(db: Database, settings: Settings, now: dt.datetime | None = None) -> Round:
    async with db.begin() as conn:
        if not await models.try_services_lock(conn):
            return Round(ran=False)
        late = await models.mark_late_runs(
            conn, late_after=dt.timedelta(seconds=settings.late_after_seconds), now=now
        )
        crashed = await models.mark_crashed_runs(
            conn, timeout=dt.timedelta(seconds=settings.heartbeat_timeout_seconds), now=now
        )
        released = await models.release_expired_claims(
            conn, timeout=dt.timedelta(seconds=settings.claim_timeout_seconds), now=now
        )
        if db.dialect == "sqlite":  # announcements every listener has read long since
            await models.prune_outbox(conn)
    if late or crashed or released:
        logger.info(
            "marked %d flow runs Late and %d Crashed; released %d expired claims",
            len(late),
            len(crashed),
            len(released),
        )
    return Round(ran=True, late=len(late), crashed=len(crashed), released=len(released))


async def run_forever(db: Database, settings: Settings) -> None:
    while True:
        try:
            await run_once(db, settings)
        except DatabaseUnavailable as error:  # an outage: one line a round, not a traceback
            logger.warning("a round of the background services was skipped: %s", error)
        except Exception:  # logged; the next round runs anyway
            logger.exception("a round of the background services failed")
        await asyncio.sleep(settings.services_interval_seconds)
