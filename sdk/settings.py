"""SDK settings from ``RUNVIEW_*`` environment variables.

``RUNVIEW_API_URL`` unset means embedded mode: the backend runs inside this process over the
embedded database (``RUNVIEW_DATABASE_URL``, default ``$RUNVIEW_HOME/runview.db``).

``RUNVIEW_TRUSTED_RESULT_ROOTS`` lists where pickle and cloudpickle results may be loaded
from, comma-separated (``/data/results,s3://bucket/runs/``) or as a JSON list; unset, the
local results directory ``$RUNVIEW_HOME/results``; ``[]``, nowhere but the result storage
configured in this process (see ``sdk.results.trust``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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
    # Location prefixes pickle and cloudpickle results may be loaded from: loading them runs
    # code from the stored bytes. None: the local results directory.
    trusted_result_roots: Annotated[list[str] | None, NoDecode] = None

    @field_validator("api_url", "api_key", "database_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `RUNVIEW_API_URL= runview ...` means embedded, not a server at ''.
        return None if value == "" else value

    @field_validator("trusted_result_roots", mode="before")
    @classmethod
    def _roots_from_text(cls, value: object) -> object:
        # Comma-separated is what people type; a JSON list holds a location with a comma.
        if not isinstance(value, str):
            return value
        text = value.strip()
        if not text:
            return None
        if text.startswith("["):
            return json.loads(text)
        return [root.strip() for root in text.split(",") if root.strip()]

    @property
    def results_dir(self) -> Path:
        return self.home.expanduser() / "results"

    @property
    def result_roots(self) -> list[str]:
        """The trusted result roots this setting names (unset: the local results directory)."""
        if self.trusted_result_roots is None:
            return [str(self.results_dir)]
        return list(self.trusted_result_roots)

    @property
    def embedded_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.home.expanduser() / 'runview.db'}"
