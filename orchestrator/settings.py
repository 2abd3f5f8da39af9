"""Configuration from the environment (``SAGA_`` prefix), in one place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_HOME = Path(".saga")


def normalise_database_url(url: str) -> str:
    """Accept plain ``postgresql://`` and ``sqlite:///`` URLs; use the async drivers."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql+psycopg://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


class Settings(BaseSettings):
    """The orchestrator's settings. Every field reads ``SAGA_<NAME>`` from the environment."""

    model_config = SettingsConfigDict(env_prefix="SAGA_", extra="ignore")

    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_HOME}/orchestrator.db"
    #: Participant name -> base URL(s). The only place URLs come from.
    participants: Annotated[dict[str, list[str]], NoDecode] = Field(default_factory=dict)
    enable_faults: bool = False
    api_key: str | None = None
    #: The orchestrator's URL as participants reach it (callback steps complete there).
    #: ``saga serve`` derives it from --host/--port when unset.
    public_url: str | None = None
    #: Key of callback tokens; unset: one is created in the database and shared.
    callback_secret: str | None = None

    #: Sagas one worker drives at once.
    worker_concurrency: int = Field(default=200, ge=1, le=10_000)
    #: How long a claimed saga stays ours without renewal.
    lease_s: float = Field(default=15.0, gt=0.5)
    #: Longest sleep between claims when nothing wakes the worker.
    poll_interval_s: float = Field(default=0.5, gt=0)
    claim_batch: int = Field(default=50, ge=1, le=1000)
    #: A retry due sooner than this is waited for in the worker (keeping the lease);
    #: a later one releases the saga to the database.
    hold_backoff_s: float = Field(default=2.0, ge=0)
    #: Fault rules are re-read at most this often by each worker.
    fault_refresh_s: float = Field(default=0.5, gt=0)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_response_bytes: int = Field(default=1_048_576, ge=1024)
    database_pool_size: int = Field(default=10, ge=1)
    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator("participants", mode="before")
    @classmethod
    def _parse_participants(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("participants")
    @classmethod
    def _check_urls(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, urls in value.items():
            if not urls:
                raise ValueError(f"participant {name!r} has no base URL")
            for url in urls:
                if not url.startswith(("http://", "https://")):
                    raise ValueError(f"participant {name!r}: {url!r} is not an http(s) URL")
        return {k: [u.rstrip("/") for u in v] for k, v in value.items()}
