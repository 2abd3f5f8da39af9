"""A worker's memory over a long run: RSS of one ``saga serve`` at two saga counts.

The process runs ``first`` sagas, then more up to ``second`` in total, at one
in-flight count; its resident set size is read from ``/proc`` after each.
Steady memory means the second reading stays near the first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.bench import procstat
from orchestrator.bench.load import keep_in_flight
from orchestrator.bench.modes import Orchestrator


async def measure_memory(
    *,
    workdir: Path,
    database_dsn: str,
    database_name: str,
    participant_url: str,
    checkpoints: tuple[int, int],
    in_flight: int,
    poll_s: float,
) -> dict[str, Any]:
    """RSS (MiB) of a fresh ``saga serve`` after each of ``checkpoints`` sagas."""
    first, second = checkpoints
    mode = Orchestrator(
        workdir, database_dsn, database_name, participant_url, poll_s, in_flight=in_flight
    )
    mode.process.name = "memory"
    await mode.start()
    try:
        pid = mode.driver_pid
        assert pid is not None
        done = await keep_in_flight(mode.run_one, first, in_flight)
        rss_first = procstat.rss_bytes(pid)
        more = await keep_in_flight(mode.run_one, second - first, in_flight)
        rss_second = procstat.rss_bytes(pid)
    finally:
        await mode.stop()
    return {
        "in_flight": in_flight,
        "checkpoints": [first, second],
        "completed": done.completed + more.completed,
        "rss_mib": [round(rss_first / 2**20, 1), round(rss_second / 2**20, 1)],
        "growth": round(rss_second / rss_first - 1, 4),
    }
