"""Server settings, read from ``RUNVIEW_*`` environment variables."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address to listen on) is reachable from this machine
    only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Where the server keeps its data and how it listens.

    ``database_url`` unset means the embedded SQLite database at ``$RUNVIEW_HOME/runview.db``.
    """

    model_config = SettingsConfigDict(env_prefix="RUNVIEW_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".runview")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 4200
    # Whether the server runs migrations when it starts. Unset: only for the embedded
    # database, which nobody else manages; a shared PostgreSQL is upgraded deliberately
    # with `runview db upgrade`.
    upgrade_on_start: bool | None = None
    # Answer read-only queries with one SQL statement that builds the JSON (backend.api.compiled);
    # off, every query goes through Strawberry's executor.
    compiled_reads: bool = True
    # Answer state proposals (set_*_states) without Strawberry's per-field execution
    # (backend.api.compiled_states); off, they go through the executor.
    compiled_states: bool = True
    # Background services (Late marking, crash detection, releasing expired claims).
    run_services: bool = True
    services_interval_seconds: float = 5.0
    late_after_seconds: float = 15.0
    heartbeat_timeout_seconds: float = 90.0
    # A run an agent claimed (Pending) with no sign of life from that agent for this long
    # goes back to Scheduled for another agent. A live agent beats for its claims every
    # RUNVIEW_HEARTBEAT_INTERVAL_SECONDS (10) while their processes start.
    claim_timeout_seconds: float = 90.0

    # Auth: ``required`` means every request needs ``Authorization: Bearer <key>``
    # (`runview api-key create`). Unset: off on a loopback host, and `server start` refuses
    # any other host unless auth is required or --insecure is given.
    auth: Literal["required", "off"] | None = None
    # The Host header a request may carry (DNS rebinding sends a browser's requests to a
    # loopback server under a foreign name). Unset: the loopback names, plus the host the
    # server listens on, or this machine's names when it listens on every interface.
    allowed_hosts: Annotated[list[str] | None, NoDecode] = None
    # How long a key found by its token is trusted without asking the database again: a
    # revoked key stops working within this many seconds. 0 asks on every request.
    auth_cache_seconds: float = 5.0

    # Limits (backend.api.limits): a request over one is refused before any SQL runs, with
    # an error (code LIMIT_EXCEEDED) that names the limit, its value and the setting.
    # Nesting of a selection, from the root fields (introspection not counted).
    max_depth: int = 12
    max_aliases: int = 100
    # Fields selected, counting a fragment each time it is spread.
    max_fields: int = 1_000
    # Rows a list field answers (per parent row) when it has no `limit`: enough for every
    # task run of a 100,000-child map, which the SDK reads in one request.
    default_rows: int = 100_000
    # The largest `limit` a list field takes.
    max_rows: int = 100_000
    # The most rows one chain of nested lists may return: the product of their limits
    # (default_rows where none is given). Three nested lists at the default pass, four do not.
    max_cost: int = 10**15
    # The most rows one answer of the executor may hold, counted as its list fields answer:
    # it builds an object of every row in the event loop, some 50,000 a second, so this is
    # a few seconds of one core. (The compiled path's answer is built by the database, under
    # the statement timeout; the SDK's reads take that path.)
    max_answer_rows: int = 200_000
    # Items in any other input list (`_in`, `_nin`, `_or`, order_by, ...).
    max_list_items: int = 100_000
    max_states_per_request: int = 10_000
    max_logs_per_request: int = 10_000
    max_mapped_children: int = 100_000
    max_body_bytes: int = 10 * 1024 * 1024
    # Subscriptions: operations one WebSocket may run at once, and the transactions of
    # events one subscriber may leave unread before it is closed (it can subscribe again).
    max_subscriptions_per_connection: int = 100
    subscription_buffer: int = 1_000
    # SQLite: how often the run events outbox is read while anyone subscribes.
    events_poll_seconds: float = 0.1
    # A statement that runs longer is stopped by the database (SQLite: interrupted); 0: never.
    statement_timeout_seconds: float = 30.0

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.home.expanduser() / 'runview.db'}"

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        # RUNVIEW_ALLOWED_HOSTS="runview.internal,10.0.0.5"; "*" answers any name.
        if isinstance(value, str):
            return [name.strip().strip("[]").lower() for name in value.split(",") if name.strip()]
        return value

    @property
    def auth_required(self) -> bool:
        if self.auth is not None:
            return self.auth == "required"
        return not is_loopback(self.host)

    @property
    def resolved_allowed_hosts(self) -> list[str]:
        if self.allowed_hosts is not None:
            return self.allowed_hosts
        hosts = list(LOOPBACK_NAMES)
        if self.host in WILDCARD_HOSTS:
            name = socket.gethostname()
            hosts += [name.lower(), socket.getfqdn(name).lower()]
        elif self.host.strip("[]").lower() not in hosts:
            hosts.append(self.host.strip("[]").lower())
        return hosts

    @property
    def should_upgrade_on_start(self) -> bool:
        if self.upgrade_on_start is not None:
            return self.upgrade_on_start
        return self.resolved_database_url.startswith("sqlite")
