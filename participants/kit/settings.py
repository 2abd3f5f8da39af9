"""Configuration of a kit-built service, read from ``PARTICIPANT_*`` environment variables.

Every example service (and any service built on the kit) takes one
:class:`ParticipantSettings`. The database URL is normalised here so the rest of
the kit only ever sees the two async drivers it supports: asyncpg for
PostgreSQL and aiosqlite for SQLite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_DRIVER_PREFIXES = {
    "postgres://": "postgresql+asyncpg://",
    "postgresql://": "postgresql+asyncpg://",
    "postgresql+psycopg://": "postgresql+asyncpg://",
    "postgresql+psycopg2://": "postgresql+asyncpg://",
    "sqlite://": "sqlite+aiosqlite://",
}


class ParticipantSettings(BaseSettings):
    """Settings of one participant service.

    ``database_url`` left unset means the embedded default: a SQLite file
    ``./.saga/<service>.db`` (see :func:`resolve_database_url`).
    """

    model_config = SettingsConfigDict(env_prefix="PARTICIPANT_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; postgresql:// and sqlite:/// are accepted and normalised.",
    )
    enable_faults: bool = Field(
        default=False,
        description="Expose /_faults and /_reset. For test and staging only.",
    )
    db_pool_size: int = Field(default=10, ge=1, description="Connections kept per service.")
    db_max_overflow: int = Field(default=5, ge=0, description="Extra connections under load.")
    db_lock_timeout_ms: int = Field(
        default=10_000,
        ge=0,
        description=(
            "How long a request waits for a row or key held by another transaction before "
            "answering 503 (PostgreSQL lock_timeout, SQLite busy_timeout)."
        ),
    )
    optimistic_attempts: int = Field(
        default=20,
        ge=1,
        description="Attempts of an optimistic update before the request answers 503.",
    )

    callback_timeout_ms: int = Field(
        default=5_000,
        gt=0,
        description="How long one completion sent to the orchestrator may take.",
    )
    callback_backoff_ms: int = Field(
        default=100, gt=0, description="Wait before the first resend of a completion."
    )
    callback_max_backoff_ms: int = Field(
        default=2_000, gt=0, description="Longest wait between resends of a completion."
    )
    callback_poll_ms: int = Field(
        default=1_000,
        gt=0,
        description="How often pending completions are looked for when nothing wakes the sender.",
    )

    amqp_url: str | None = Field(
        default=None,
        description=(
            "Broker URL (amqp://user:pass@host:5672/%2F): also serve commands from the "
            "service's queue there. Unset: HTTP only."
        ),
    )
    amqp_queue: str | None = Field(
        default=None, description="The command queue (default: the service's name)."
    )
    amqp_prefetch: int = Field(
        default=32, ge=1, description="Commands delivered but not yet acknowledged, at most."
    )
    amqp_concurrency: int = Field(
        default=16, ge=1, description="Commands handled at once, at most."
    )

    def __repr_args__(self) -> Any:
        # Settings end up in logs and tracebacks: never with the database password.
        for name, value in super().__repr_args__():
            if name in ("database_url", "amqp_url") and isinstance(value, str):
                yield name, masked_url(value)
            else:
                yield name, value


def default_database_url(service: str) -> str:
    """The embedded default for ``service``: a SQLite file under ``./.saga/``."""
    return f"sqlite+aiosqlite:///./.saga/{service}.db"


def normalise_database_url(url: str) -> str:
    """Rewrite ``url`` to the async driver the kit uses for its database.

    >>> normalise_database_url("postgresql://u@h/db")
    'postgresql+asyncpg://u@h/db'
    >>> normalise_database_url("sqlite:///./x.db")
    'sqlite+aiosqlite:///./x.db'
    """
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    for prefix, replacement in _DRIVER_PREFIXES.items():
        if url.startswith(prefix):
            return replacement + url[len(prefix) :]
    raise ValueError(
        f"unsupported database URL {masked_url(url)!r}: "
        "use postgresql[+asyncpg]:// or sqlite[+aiosqlite]:///"
    )


def masked_url(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part replaced by ``***``.

    >>> masked_url("postgresql://app:s3cret@db:5432/payments")
    'postgresql://app:***@db:5432/payments'
    """
    scheme, sep, rest = url.partition("://")
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{host}{slash}{tail}"


def sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for PostgreSQL and in-memory databases."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1].split("?", 1)[0] if ":///" in url else ""
    if path in ("", ":memory:"):
        return None
    return Path(path)


def resolve_database_url(service: str, settings: ParticipantSettings) -> str:
    """The normalised URL ``service`` should use, creating a SQLite file's directory."""
    url = normalise_database_url(settings.database_url or default_database_url(service))
    file = sqlite_file(url)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
    return url
