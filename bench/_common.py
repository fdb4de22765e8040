"""What every benchmark shares: throw-away databases, timing, and the printed table.

PostgreSQL databases are named ``runview_bench_<random>`` on the server of
``RUNVIEW_BENCH_DATABASE_URL`` (default: the test suite's ``postgres@127.0.0.1:5432/test``,
used only to connect while creating and dropping them). SQLite files live in a temporary
directory. Both are removed when the ``database`` context exits, also on error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from backend.database import migrate

ADMIN_URL = os.environ.get(
    "RUNVIEW_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ("postgresql", "sqlite")


def libpq_conninfo(url: str) -> str:
    """``url`` (a SQLAlchemy URL) as a plain libpq URL that psycopg accepts."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sqlite_path(url: str) -> str:
    path = make_url(url).database
    if not path:
        raise ValueError(f"{url!r} names no SQLite file")
    return path


def postgres_version() -> str:
    with psycopg.connect(libpq_conninfo(ADMIN_URL)) as conn:
        row = conn.execute("SELECT version()").fetchone()
    return str(row[0]) if row else "?"


@contextlib.contextmanager
def database(backend: str) -> Iterator[str]:
    """A fresh, migrated database on ``backend``; yields its SQLAlchemy URL, then drops it."""
    name = f"runview_bench_{uuid.uuid4().hex[:10]}"
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="runview_bench_") as directory:
            url = f"sqlite+aiosqlite:///{Path(directory) / f'{name}.db'}"
            asyncio.run(migrate.upgrade_url(url))
            yield url
        return
    admin = libpq_conninfo(ADMIN_URL)
    with psycopg.connect(admin, autocommit=True) as conn:
        # C collation, as the test suite uses: string order is code point order.
        conn.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    try:
        url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        asyncio.run(migrate.upgrade_url(url))
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def time_ms(action: Callable[[], Any]) -> float:
    """Wall-clock milliseconds of one call of ``action``."""
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def interleaved(
    actions: dict[str, Callable[[], Any]], runs: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Time each action ``runs`` times after ``warmup`` untimed calls, alternating actions.

    Alternating (a, b, a, b, ...) rather than (a, a, ..., b, b, ...) spreads the noise of a
    shared machine over both sides of a ratio instead of landing on one of them.
    """
    for _ in range(warmup):
        for action in actions.values():
            action()
    times: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(runs):
        for name, action in actions.items():
            times[name].append(time_ms(action))
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print ``rows`` under ``header`` as a compact left-aligned, space-separated table."""
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for row in cells:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print(line.rstrip())
