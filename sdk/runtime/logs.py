"""Run logs: ``get_run_logger()`` inside flows and tasks, shipped to the server in batches.

A record logged through a run logger carries its run's ids and its flow run's
``LogShipper``; the shipper collects records and sends them with ``write_run_logs`` every
second, whenever 1,000 are waiting (at most 4 MiB of them a request), and once more when the
flow run ends (before its final
state is proposed, so the logs are there when the run returns).

On the console: records propagate to the standard logging tree, so a program that
configured logging (a handler on the root logger) shows them its own way. One that did not
would show none: Python's last-resort handler speaks only when no handler at all is on a
record's way, and ``RunLogHandler`` is. So ``ConsoleFallback`` prints INFO and above on
stderr, but only while the root logger has no handler: either way each record shows once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

from sdk import documents
from sdk.client import Client
from sdk.runtime.text import storable

BATCH = 1_000
# JSON bytes of records per request: well inside the server's default body limit of 10 MiB
# (RUNVIEW_MAX_BODY_BYTES), which 1,000 records of up to 100,000 characters each could pass.
BATCH_BYTES = 4 * 1024 * 1024
INTERVAL_SECONDS = 1.0


class LogShipper:
    def __init__(self, client: Client) -> None:
        self.client = client
        self._records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="runview-logs", daemon=True)
        self._thread.start()

    def add(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._records.append(record)
            if len(self._records) >= BATCH:
                self._wake.set()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(INTERVAL_SECONDS)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        with self._lock:
            records, self._records = self._records, []
        for batch in batches(records):
            try:
                answer = self.client.execute(documents.WRITE_RUN_LOGS, {"input": {"logs": batch}})
            except Exception as error:  # logging must never break the run it describes
                print(f"runview: could not ship {len(batch)} log records: {error}", file=sys.stderr)
                continue
            for rejected in answer["write_run_logs"]["rejected"]:
                print(f"runview: a log record was refused: {rejected['message']}", file=sys.stderr)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=10)
        self.flush()


def batches(records: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """``records`` in order, in batches of at most ``BATCH`` records and ``BATCH_BYTES`` of
    JSON as sent (non-ASCII escaped), except a record larger alone."""
    batch: list[dict[str, Any]] = []
    size = 0
    for record in records:
        length = len(json.dumps(record)) + 1
        if batch and (len(batch) >= BATCH or size + length > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += length
    if batch:
        yield batch


class ConsoleFallback(logging.Handler):
    """Prints run-log records on stderr while the program has configured no logging.

    Checked at each record, so logging configured after ``import sdk`` takes over.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(
            logging.Formatter(
                "%(asctime)s.%(msecs)03d | %(levelname)-7s | %(name)s - %(message)s", "%H:%M:%S"
            )
        )

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return  # the record reaches the root's handlers: printing it here would double it
        try:
            # sys.stderr looked up now, not kept: it may have been replaced since.
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


class RunLogHandler(logging.Handler):
    """Hands records of run loggers to their flow run's shipper."""

    def emit(self, record: logging.LogRecord) -> None:
        shipper: LogShipper | None = getattr(record, "runview_shipper", None)
        if shipper is None:
            return
        task_run_id = getattr(record, "task_run_id", None)
        shipper.add(
            {
                # Made here: a batch sent again after a lost answer is stored once.
                "id": str(uuid.uuid4()),
                "flow_run_id": str(record.flow_run_id),  # type: ignore[attr-defined]
                "task_run_id": str(task_run_id) if task_run_id else None,
                "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
                "level": record.levelno,
                "name": storable(record.name),
                "message": storable(self.format(record)),
            }
        )


_logger = logging.getLogger("runview.runs")
_logger.addHandler(RunLogHandler())
_logger.addHandler(ConsoleFallback())
_logger.setLevel(logging.INFO)


def get_run_logger() -> logging.LoggerAdapter[logging.Logger]:
    """A logger whose records are stored with the current flow run (and task run).

    Example::

        @task
        def load():
            get_run_logger().info("loaded %d rows", 42)

    Raises:
        RuntimeError: Called outside a flow run.
    """
    from sdk.runtime.context import FLOW_RUN, TASK_RUN

    flow_run, task_run = FLOW_RUN.get(), TASK_RUN.get()
    if flow_run is None or flow_run.logs is None:
        raise RuntimeError("get_run_logger() is for code running inside a flow or a task.")
    extra = {
        "runview_shipper": flow_run.logs,
        "flow_run_id": flow_run.flow_run_id,
        "task_run_id": task_run.task_run_id if task_run else None,
    }
    name = f"runview.runs.{task_run.task_slug if task_run else flow_run.flow.name}"
    return logging.LoggerAdapter(logging.getLogger(name), extra)


def run_logger_or_console(name: str) -> logging.LoggerAdapter[logging.Logger]:
    """``get_run_logger()`` inside a flow or a task run; elsewhere a logger named
    ``runview.runs.<name>`` whose records only go to the console (see the module docstring).

    For SDK code that may run either way, such as ``wait_for_flow_run``.
    """
    try:
        return get_run_logger()
    except RuntimeError:
        return logging.LoggerAdapter(logging.getLogger(f"runview.runs.{name}"), {})
