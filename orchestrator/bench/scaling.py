"""Several workers on one database: throughput with N ``saga serve --role worker``.

Sagas are started through a separate API-only process (``--role api``), so
none is handed straight to a worker in the process that started it: every
saga is claimed from the database by one of the N workers, woken by
PostgreSQL ``LISTEN``/``NOTIFY``. Version conflicts and lease takeovers are
read from each worker's ``/metrics`` at the end.
"""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Any

import httpx

from orchestrator.bench import services
from orchestrator.bench.load import Ended, keep_in_flight
from orchestrator.bench.measure import warmup_count
from orchestrator.bench.modes import EndWatcher, http_client, start_and_watch
from orchestrator.harness.processes import ManagedProcess


async def measure_workers(
    workers: int,
    *,
    workdir: Path,
    database_dsn: str,
    participant_url: str,
    sagas: int,
    in_flight: int,
    runs: int,
    poll_s: float,
) -> dict[str, Any]:
    """Throughput (median of ``runs``) with ``workers`` worker processes and their counters."""
    api = services.saga_serve(f"scale{workers}-api", workdir, database_dsn, participant_url, "api")
    fleet = [
        services.saga_serve(
            f"scale{workers}-worker{i + 1}", workdir, database_dsn, participant_url, "worker"
        )
        for i in range(workers)
    ]
    watcher = EndWatcher(database_dsn, poll_s)
    try:
        api.start()
        await api.wait_ready()  # it migrates; the workers then find the schema at head
        for worker in fleet:
            worker.start()
        await asyncio.gather(*(w.wait_ready() for w in fleet))
        await services.register_definition(api.url)
        await watcher.open()
        async with http_client(api.url, in_flight) as http:

            async def run_one() -> Ended:
                return await start_and_watch(http, watcher)

            await keep_in_flight(run_one, warmup_count(sagas), in_flight)
            loads = [await keep_in_flight(run_one, sagas, in_flight) for _ in range(runs)]
        counters = await _counters(fleet)
    finally:
        await watcher.close()
        await asyncio.gather(*(p.stop() for p in [*fleet, api]))
    return {
        "workers": workers,
        "in_flight": in_flight,
        "sagas": sum(x.sagas for x in loads),
        "completed": sum(x.completed for x in loads),
        "sagas_per_s": round(statistics.median(x.sagas_per_s for x in loads), 2),
        "p50_ms": round(statistics.median(x.percentile_ms(0.5) for x in loads), 2),
        "p99_ms": round(statistics.median(x.percentile_ms(0.99) for x in loads), 2),
        **counters,
    }


async def _counters(fleet: list[ManagedProcess]) -> dict[str, Any]:
    """Conflicts and takeovers summed over the workers (warm-up included), claims per worker."""
    conflicts = takeovers = 0.0
    claimed: list[int] = []
    async with httpx.AsyncClient(timeout=10) as http:
        for worker in fleet:
            values = await worker.scrape(http) or {}
            conflicts += values.get("saga_version_conflicts_total", 0.0)
            takeovers += values.get("saga_lease_takeovers_total", 0.0)
            claimed.append(int(values.get("saga_claimed_total", 0.0)))
    return {
        "version_conflicts": int(conflicts),
        "lease_takeovers": int(takeovers),
        "claimed_per_worker": claimed,
    }
