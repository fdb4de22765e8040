"""Background services of the server process: Late marking and crash detection.

Every ``services_interval_seconds`` each replica tries the services' lock; the one that
gets it runs both passes in one transaction, the others skip that round. A failed round is
logged and the next one runs as usual: a database hiccup must not stop the services.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from backend import models
from backend.database.engine import Database
from backend.settings import Settings

logger = logging.getLogger("runview.services")


@dataclass(frozen=True)
class Round:
    """What one round of the services did; ``ran`` is False if another replica had it."""

    ran: bool
    late: int = 0
    crashed: int = 0


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
    if late or crashed:
        logger.info("marked %d flow runs Late and %d Crashed", len(late), len(crashed))
    return Round(ran=True, late=len(late), crashed=len(crashed))


async def run_forever(db: Database, settings: Settings) -> None:
    while True:
        try:
            await run_once(db, settings)
        except Exception:  # logged; the next round runs anyway
            logger.exception("a round of the background services failed")
        await asyncio.sleep(settings.services_interval_seconds)
