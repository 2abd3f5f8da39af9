"""Graceful overload: a locked, exhausted or unreachable database is a quick 503, not a hang."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from tests.hardening.helpers import assert_error, register, start
from tests.support.databases import PG_HOST, PG_PORT, PG_USER
from tests.support.orchestrator import fast_settings, running_orchestrator, step
from tests.support.servers import free_port

pytestmark = pytest.mark.postgres

DEADLINE_S = 1.5


def _conninfo(database_url: str) -> str:
    database = database_url.rsplit("/", 1)[1]
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={database}"


async def test_pool_exhausted_by_a_lock_answers_503_quickly(
    database_url: str, participant_url: str
) -> None:
    # Two connections in all (pool 1 + overflow 1), and API-only so no worker uses them.
    settings = fast_settings(
        database_url,
        {"p": [participant_url]},
        database_pool_size=1,
        request_timeout_s=DEADLINE_S,
        callback_secret="s" * 32,
    )
    async with running_orchestrator(settings, role="api") as api:
        await register(api, "d", [step("a")])
        saga_id = await start(api, "d")
        async with await psycopg.AsyncConnection.connect(_conninfo(database_url)) as locker:
            await locker.execute("LOCK TABLE sagas IN ACCESS EXCLUSIVE MODE")
            # Twelve concurrent requests: two hold the connections waiting on the
            # lock, the others wait for a connection. Every one answers in time.
            started = time.perf_counter()

            async def timed(path: str) -> float:
                response = await api.get(path)
                assert_error(response, 503, "unavailable")
                return time.perf_counter() - started

            paths = [f"/v1/sagas/{saga_id}", "/v1/sagas?limit=5"] * 6
            took = await asyncio.gather(*(timed(p) for p in paths))
            assert max(took) < DEADLINE_S + 1.0, took
            health = time.perf_counter()
            assert (await api.get("/healthz")).status_code == 200
            assert time.perf_counter() - health < 0.5
            await locker.rollback()
        # The cancelled requests gave their connections back: the API serves again.
        for _ in range(10):
            response = await api.get(f"/v1/sagas/{saga_id}")
            assert response.status_code == 200, response.text


async def test_database_unreachable_answers_503_quickly(participant_url: str) -> None:
    closed = free_port()  # nothing listens there
    settings = fast_settings(
        f"postgresql+asyncpg://{PG_USER}@127.0.0.1:{closed}/nowhere",
        {"p": [participant_url]},
        callback_secret="s" * 32,
    )
    async with running_orchestrator(settings, role="api") as api:
        for method, path, body in (
            ("GET", "/v1/sagas", None),
            ("GET", "/v1/definitions/d", None),
            ("POST", "/v1/sagas", {"definition": "d", "input": {}}),
            ("POST", "/v1/definitions", {"name": "d", "steps": [step("a", participant="p")]}),
        ):
            began = time.perf_counter()
            response = await api.request(method, path, json=body)
            assert_error(response, 503, "unavailable")
            assert time.perf_counter() - began < 1.0
        readyz = await api.get("/readyz")
        assert readyz.status_code == 503
        assert readyz.json()["error"]["code"] == "not_ready"
        assert (await api.get("/healthz")).status_code == 200
