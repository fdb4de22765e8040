"""SDK settings from ``RUNVIEW_*`` environment variables.

``RUNVIEW_API_URL`` unset means embedded mode: the backend runs inside this process over the
embedded database (``RUNVIEW_DATABASE_URL``, default ``$RUNVIEW_HOME/runview.db``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SDKSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RUNVIEW_", extra="ignore")

    api_url: str | None = None
    api_key: str | None = None
    home: Path = Field(default_factory=lambda: Path.home() / ".runview")
    database_url: str | None = None
    # How often a running flow run tells the server it is alive (and learns if it is being
    # cancelled). Keep it well under the server's RUNVIEW_HEARTBEAT_TIMEOUT_SECONDS (90).
    heartbeat_interval_seconds: float = 10.0
    # How long the client retries a request while the server is unreachable or answers
    # 502/503/504: a restart, a deploy or a database failover shorter than this is ridden
    # through. 0: report the first failure.
    client_retry_seconds: float = Field(default=120.0, ge=0)

    @field_validator("api_url", "api_key", "database_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `RUNVIEW_API_URL= runview ...` means embedded, not a server at ''.
        return None if value == "" else value

    @property
    def results_dir(self) -> Path:
        return self.home.expanduser() / "results"

    @property
    def embedded_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.home.expanduser() / 'runview.db'}"
