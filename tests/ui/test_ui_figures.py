"""Figures of the web UI (deselected by default; run with ``-m benchmark -s``).

- The list page with 100,000 sagas in the database: median and p95 of the
  first page, a status filter, a definition filter and the next page.
- What one open saga page costs the database per minute while idle: a saga
  at rest (the page asks nothing) and a saga waiting on a slow call (the page
  asks for its state every 2 s). Counted as PostgreSQL transactions of the
  orchestrator's database, with an API-only orchestrator so that no worker's
  polling is counted, and as the requests the browser made.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tests.support.orchestrator import (
    cloned_database,
    fast_settings,
    running_orchestrator,
    step,
    wait_final,
    wait_step,
)
from tests.support.participant import ScriptedParticipant

pytestmark = [pytest.mark.benchmark, pytest.mark.postgres]

SAGAS = 100_000
IDLE_S = 60.0


async def _sql(url: str, *statements: str) -> list[Any]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            results = [await conn.execute(sa.text(s)) for s in statements]
            return [r.all() if r.returns_rows else [] for r in results]
    finally:
        await engine.dispose()


async def _timed(api: httpx.AsyncClient, path: str, runs: int = 20) -> tuple[float, float]:
    took = []
    for _ in range(runs):
        began = time.perf_counter()
        answer = await api.get(path)
        took.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 200, answer.text[:300]
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.95) - 1]


async def test_the_list_page_with_100_000_sagas(
    template_db: str, participant: ScriptedParticipant, participant_url: str
) -> None:
    participant.steady["b"] = 409
    with cloned_database(template_db) as url:
        async with running_orchestrator(fast_settings(url, {"p": [participant_url]})) as api:
            await api.post("/v1/definitions", json={"name": "one", "steps": [step("a")]})
            await api.post("/v1/definitions", json={"name": "two", "steps": [step("a"), step("b")]})
            seeds = []
            for name in ("one", "two"):
                saga = await api.post("/v1/sagas", json={"definition": name, "input": {"n": 1}})
                seeds.append(saga.json()["id"])
            for saga_id in seeds:
                await wait_final(api, saga_id)
            per_seed = SAGAS // len(seeds)
            copies = [
                "INSERT INTO sagas (id, definition_name, definition_version, status, input, state,"
                " version, wake_at, lease_owner, lease_expires_at, created_at, updated_at,"
                " trace_id) SELECT gen_random_uuid(), definition_name, definition_version,"
                " status, input, state, version, NULL, NULL, NULL,"
                " created_at - (g * interval '1 second'), updated_at, trace_id"
                f" FROM sagas, generate_series(1, {per_seed}) AS g WHERE id = '{saga_id}'"
                for saga_id in seeds
            ]
            await _sql(url, *copies, "ANALYZE sagas")
            [[(total,)]] = await _sql(url, "SELECT count(*) FROM sagas")
            first = await api.get("/ui/sagas")
            cursor = first.text.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
            print(f"\nlist page, {total} sagas in the database (20 requests each, ms):")
            for label, path in [
                ("first page", "/ui/sagas"),
                ("status=compensated", "/ui/sagas?status=compensated"),
                ("definition=one", "/ui/sagas?definition=one"),
                ("next page (cursor)", cursor),
            ]:
                median, p95 = await _timed(api, path)
                print(f"  {label:<22} median {median:6.1f}  p95 {p95:6.1f}")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
async def test_what_an_open_saga_page_costs_per_minute(
    template_db: str, participant: ScriptedParticipant, participant_url: str
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    participant.delay["b"] = IDLE_S + 30
    with cloned_database(template_db) as url:
        settings = fast_settings(url, {"p": [participant_url]})
        async with running_orchestrator(settings) as driver:
            slow = [step("a"), step("b", timeout_ms=120_000)]
            await driver.post("/v1/definitions", json={"name": "slow", "steps": slow})
            await driver.post("/v1/definitions", json={"name": "quick", "steps": [step("a")]})
            resting = await driver.post("/v1/sagas", json={"definition": "quick", "input": {}})
            moving = await driver.post("/v1/sagas", json={"definition": "slow", "input": {}})
            await wait_step(driver, moving.json()["id"], 1, "running")
            saga_ids = {"at rest": resting.json()["id"], "waiting on a call": moving.json()["id"]}
            await wait_final(driver, saga_ids["at rest"])
        # The worker is gone: the second saga stays running, and only the page asks.
        database = url.rsplit("/", 1)[1]
        async with (
            running_orchestrator(settings, role="api") as ui,
            playwright_api.async_playwright() as p,
        ):
            browser = await p.chromium.launch(
                executable_path=shutil.which("chromium"), args=["--no-sandbox"]
            )
            print(f"\none open saga page for {IDLE_S:.0f} s (API-only orchestrator):")
            for label, saga_id in saga_ids.items():
                page = await browser.new_page()
                requests: list[str] = []
                await page.goto(f"{ui.base_url}/ui/sagas/{saga_id}")
                await page.wait_for_load_state("networkidle")
                before = await _commits(url, database)
                began = time.monotonic()
                page.on("request", lambda r, seen=requests: seen.append(r.url))
                await asyncio.sleep(IDLE_S)
                after = await _commits(url, database)
                per_minute = 60 / (time.monotonic() - began)
                await page.close()
                print(
                    f"  {label:<18} {len(requests) * per_minute:5.0f} requests/min, "
                    f"{max(0, after - before - 1) * per_minute:5.0f} database transactions/min"
                )
            await browser.close()


async def _commits(url: str, database: str) -> int:
    # Backends report their counts when idle (within about 10 s): wait for them first.
    await asyncio.sleep(11)
    [[(count,)]] = await _sql(
        url,
        f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{database}'",
    )
    return int(count)
