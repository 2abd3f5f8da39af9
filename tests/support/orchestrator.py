"""Orchestrator fixtures: a migrated template database, cloned per test, and a served app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx

from orchestrator.api.app import create_app
from orchestrator.settings import Settings
from orchestrator.store import migrate
from tests.support.databases import (
    create_database,
    drop_database,
    pg_url,
    throwaway_database,
    unique_name,
)
from tests.support.servers import free_port, serve_app

FINAL = {"completed", "compensated", "failed"}


@contextmanager
def orchestrator_template() -> Iterator[str]:
    """A database migrated to head, to be cloned by tests; yields its name."""
    name = unique_name("saga_tmpl")
    create_database(name)
    try:
        migrate.upgrade(pg_url(name))
        yield name
    finally:
        drop_database(name)


def fast_settings(database_url: str, participants: dict[str, list[str]], **extra: Any) -> Settings:
    """Settings with short timings so tests run quickly."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "participants": participants,
        "enable_faults": True,
        "poll_interval_s": 0.05,
        "lease_s": 3.0,
        "fault_refresh_s": 0.05,
        **extra,
    }
    return Settings(**values)


@asynccontextmanager
async def running_orchestrator(
    settings: Settings, role: str = "all"
) -> AsyncIterator[httpx.AsyncClient]:
    """Serve the orchestrator on loopback; yield an HTTP client for its API."""
    port = free_port()
    if settings.public_url is None:  # callback steps must be able to reach it
        settings = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"})
    app = create_app(settings, role=role)
    async with (
        serve_app(app, port) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
    ):
        client.app = app  # type: ignore[attr-defined]
        yield client


@contextmanager
def cloned_database(template: str) -> Iterator[str]:
    with throwaway_database("saga_test", template=template) as url:
        yield url


def step(name: str, participant: str = "p", **extra: Any) -> dict[str, Any]:
    """A compensatable step calling the scripted participant."""
    body: dict[str, Any] = {
        "name": name,
        "participant": participant,
        "action": {"path": f"/do/{name}"},
        "compensation": {"path": f"/undo/{name}"},
        "retry": {"max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 50},
        "timeout_ms": 2000,
    }
    body.update(extra)
    return body


async def wait_step(
    client: httpx.AsyncClient, saga_id: str, index: int, status: str, timeout_s: float = 30
) -> dict[str, Any]:
    """Poll until step ``index`` of the saga has ``status``; the saga as then read."""
    deadline = time.monotonic() + timeout_s
    while True:
        saga: dict[str, Any] = (await client.get(f"/v1/sagas/{saga_id}")).json()
        if saga["steps"][index]["status"] == status:
            return saga
        if time.monotonic() > deadline:
            raise AssertionError(f"step {index} of {saga_id} never {status}: {saga}")
        await asyncio.sleep(0.02)


async def wait_final(
    client: httpx.AsyncClient, saga_id: str, timeout_s: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        saga: dict[str, Any] = (await client.get(f"/v1/sagas/{saga_id}")).json()
        if saga["status"] in FINAL:
            return saga
        if time.monotonic() > deadline:
            raise AssertionError(
                f"saga {saga_id} still {saga['status']} after {timeout_s}s: {saga}"
            )
        await asyncio.sleep(0.05)
