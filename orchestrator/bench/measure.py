"""One measurement: a load through a mode, with the databases' commits and the
driver's and the participant's CPU time around it."""

from __future__ import annotations

import statistics
from typing import Any

from orchestrator.bench import pg, procstat
from orchestrator.bench.load import keep_in_flight, percentile_ms
from orchestrator.bench.modes import Mode


def warmup_count(sagas: int) -> int:
    """Sagas run unmeasured before each measurement (connections, caches, JIT of plans)."""
    return max(sagas // 10, 20)


async def measure(
    mode: Mode,
    dbs: pg.Databases,
    *,
    sagas: int,
    in_flight: int,
    participant_pid: int | None = None,
) -> dict[str, Any]:
    """Warm up, then run ``sagas`` at ``in_flight`` through ``mode`` and return its figures.

    Commits are ``xact_commit`` deltas read after :func:`pg.settle`; the CPU
    times are the driving process's and (given its pid) the participant's,
    read as soon as the load ends (so their idle time afterwards is not
    counted).
    """
    await keep_in_flight(mode.run_one, warmup_count(sagas), in_flight)
    await pg.settle()
    state_db = mode.state_database
    state_before = await dbs.commits(state_db) if state_db else 0
    participant_before = await dbs.commits(dbs.participant)
    own_before = await mode.own_commits()
    cpu_before = procstat.cpu_seconds(mode.driver_pid)
    served_before = procstat.cpu_seconds(participant_pid) if participant_pid else 0.0
    load = await keep_in_flight(mode.run_one, sagas, in_flight)
    cpu = procstat.cpu_seconds(mode.driver_pid) - cpu_before
    served = procstat.cpu_seconds(participant_pid) - served_before if participant_pid else None
    own_after = await mode.own_commits()
    await pg.settle()
    state = (await dbs.commits(state_db) - state_before) if state_db else None
    participant = await dbs.commits(dbs.participant) - participant_before
    n = load.sagas
    return {
        "mode": mode.name,
        "in_flight": in_flight,
        "sagas": n,
        "completed": load.completed,
        "elapsed_s": round(load.elapsed_s, 3),
        "sagas_per_s": round(load.sagas_per_s, 2),
        "p50_ms": round(load.percentile_ms(0.5), 2),
        "p99_ms": round(load.percentile_ms(0.99), 2),
        "seen_p50_ms": round(percentile_ms(load.seen_s, 0.5), 2) if load.seen_s else None,
        "seen_p99_ms": round(percentile_ms(load.seen_s, 0.99), 2) if load.seen_s else None,
        "state_db_commits_per_saga": None if state is None else round(state / n, 3),
        "participant_db_commits_per_saga": round(participant / n, 3),
        "own_commits_per_saga": (
            None
            if own_before is None or own_after is None
            else round((own_after - own_before) / n, 3)
        ),
        "cpu_ms_per_saga": round(cpu / n * 1000, 3),
        "participant_cpu_ms_per_saga": None if served is None else round(served / n * 1000, 3),
    }


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Field by field median of repeated measurements of one mode at one in-flight count."""
    first = runs[0]
    merged: dict[str, Any] = {"mode": first["mode"], "in_flight": first["in_flight"]}
    for key, value in first.items():
        if key in merged:
            continue
        values = [r[key] for r in runs if r[key] is not None]
        if isinstance(value, int) and not isinstance(value, bool):
            merged[key] = sum(values)
        elif values:
            merged[key] = round(statistics.median(values), 3)
        else:
            merged[key] = None
    merged["runs"] = len(runs)
    return merged
