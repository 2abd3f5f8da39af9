"""Configuration from the environment (``SAGA_`` prefix), in one place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, ValidationError, field_validator
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


def redact_url(url: str) -> str:
    """``url`` with the password of its user info (``user:password@``) masked."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at:
        return url
    user, colon, _password = userinfo.partition(":")
    masked = f"{user}:***" if colon else "***"
    return f"{scheme}://{masked}@{host}{slash}{tail}"


_AMQP_SCHEMES = ("amqp://", "amqps://")


def _check_queue_url(participant: str, url: str) -> None:
    """An AMQP address names a host and exactly one command queue (``?queue=``)."""
    parts = urlsplit(url)
    queues = parse_qs(parts.query).get("queue", [])
    if not parts.hostname:
        raise ValueError(f"participant {participant!r}: {redact_url(url)!r} names no host")
    if len(queues) != 1 or not queues[0].strip():
        raise ValueError(
            f"participant {participant!r}: {redact_url(url)!r} names no command queue "
            "(add ?queue=<name>)"
        )


class Settings(BaseSettings):
    """The orchestrator's settings. Every field reads ``SAGA_<NAME>`` from the environment."""

    model_config = SettingsConfigDict(env_prefix="SAGA_", extra="ignore")

    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_HOME}/orchestrator.db"
    #: Participant name -> base URL(s). The only place URLs come from.
    participants: Annotated[dict[str, list[str]], NoDecode] = Field(default_factory=dict)
    enable_faults: bool = False
    #: One key or several, comma-separated (rotation). Never shown in a repr or a log.
    api_key: str | None = Field(default=None, repr=False)
    #: The orchestrator's URL as participants reach it (callback steps complete there).
    #: ``saga serve`` derives it from --host/--port when unset.
    public_url: str | None = None
    #: Key of callback tokens; unset: one is created in the database and shared.
    callback_secret: str | None = Field(default=None, repr=False)

    #: How long a starting process waits for an unreachable database before giving up.
    startup_wait_s: float = Field(default=60.0, ge=0)

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
    #: Calls in flight (and keep-alive connections) per participant; more wait their turn.
    http_connections_per_participant: int = Field(default=100, ge=1, le=1000)
    #: A saga's input (and a callback's result), as compact JSON; it is stored in
    #: the saga row and copied into calls, so it is bounded apart from the body.
    max_input_bytes: int = Field(default=262_144, ge=1024)
    #: How deeply a JSON body may nest (objects and arrays).
    max_json_depth: int = Field(default=32, ge=4, le=256)
    #: Connections each process keeps to the database (a worker holds one more to LISTEN).
    database_pool_size: int = Field(default=20, ge=1)
    #: PostgreSQL: how long opening a database session may take. The three database
    #: timeouts bound every wait on the database by this process's own clock, so a
    #: database gone silent (a partition: no error, no reset) is an error in seconds,
    #: answered 503 or retried, never a hang.
    database_connect_timeout_s: float = Field(default=5.0, gt=0, le=600)
    #: PostgreSQL: how long one statement may wait for its answer (client side);
    #: a statement that takes longer is abandoned and its connection discarded.
    database_command_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    #: How long a request waits for a free connection of the pool.
    database_pool_timeout_s: float = Field(default=5.0, gt=0, le=600)
    log_level: str = "INFO"
    #: ``json`` (one object per line) or ``text``.
    log_format: Literal["json", "text"] = "json"

    #: ``/metrics`` needs the API key too (when keys are configured).
    metrics_require_key: bool = False
    #: Origins allowed to call the API from a browser; empty (default): CORS off.
    #: Comma-separated or a JSON list; ``*`` allows any origin (without credentials).
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: An API request still unanswered after this long gets 503 with ``Retry-After``
    #: (the database is slow, locked or unreachable) instead of holding the client.
    request_timeout_s: float = Field(default=10.0, gt=0, le=600)
    #: A connection that has not sent a whole request head within this long is closed.
    head_timeout_s: float = Field(default=5.0, gt=0, le=300)
    #: Base URL of an OTLP/HTTP collector (``http://host:4318``): each participant
    #: call is exported as a span to ``<url>/v1/traces``. Unset (default): no export.
    #: Needs the ``otel`` extra.
    otel_endpoint: str | None = None

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

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [o.strip() for o in text.split(",") if o.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(f"{origin!r} is not an origin (http(s)://host[:port]) or '*'")
        return [o.rstrip("/") for o in value]

    @field_validator("otel_endpoint")
    @classmethod
    def _check_otel_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/") if value else None

    def api_keys(self) -> list[str]:
        """The configured API keys (``api_key`` split on commas); empty: no authentication."""
        return [k.strip() for k in (self.api_key or "").split(",") if k.strip()]

    def __repr_args__(self) -> Any:
        # Settings end up in logs and tracebacks: show no password of a URL.
        for name, value in super().__repr_args__():
            if name == "database_url" and isinstance(value, str):
                yield name, redact_url(value)
            elif name == "participants" and isinstance(value, dict):
                yield name, {k: [redact_url(u) for u in v] for k, v in value.items()}
            else:
                yield name, value

    @field_validator("participants")
    @classmethod
    def _check_urls(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        # Every message names the URL with its password masked: settings errors are logged.
        for name, urls in value.items():
            if not urls:
                raise ValueError(f"participant {name!r} has no base URL")
            for url in urls:
                if url.startswith(_AMQP_SCHEMES):
                    _check_queue_url(name, url)
                elif not url.startswith(("http://", "https://")):
                    raise ValueError(
                        f"participant {name!r}: {redact_url(url)!r} is not an http(s) "
                        "or amqp(s) URL"
                    )
            if len({u.startswith(_AMQP_SCHEMES) for u in urls}) > 1:
                raise ValueError(
                    f"participant {name!r} mixes HTTP and AMQP addresses; "
                    "give each transport its own participant name"
                )
        return {
            k: [u if u.startswith(_AMQP_SCHEMES) else u.rstrip("/") for u in v]
            for k, v in value.items()
        }


class SettingsError(ValueError):
    """Settings that cannot be used, each problem named by its variable (no value shown)."""


def load_settings(**values: Any) -> Settings:
    """:class:`Settings` from the environment (and ``values``), or :class:`SettingsError`.

    Pydantic's own message repeats the offending input, which may hold a
    password (a URL's): this one names the variable and the problem only.
    """
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            variable = f"SAGA_{where.split('.')[0].upper()}"
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{variable}: {message}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None
