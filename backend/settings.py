"""Server settings, read from ``RUNVIEW_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.home.expanduser() / 'runview.db'}"

    @property
    def should_upgrade_on_start(self) -> bool:
        if self.upgrade_on_start is not None:
            return self.upgrade_on_start
        return self.resolved_database_url.startswith("sqlite")
