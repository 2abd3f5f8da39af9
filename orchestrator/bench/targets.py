"""The benchmark's targets, each checked against the figures: met, or missed by how much."""

from __future__ import annotations

import itertools
from typing import Any

#: Orchestrator throughput at the high in-flight count, as a multiple of...
MIN_VS_DBOS = 3.0
MIN_VS_PLAIN = 0.6
#: Saga p50 at the low in-flight count may exceed the plain chain's by this much per step.
ADDED_MS_PER_STEP = 2.0
#: A worker's RSS after the long run, relative to after the short one.
MAX_MEMORY_GROWTH = 0.20


def _check(name: str, value: float, limit: float, *, at_least: bool, unit: str) -> dict[str, Any]:
    met = value >= limit if at_least else value <= limit
    if met:
        verdict = "met"
    else:
        gap = (limit - value) if at_least else (value - limit)
        relative = f" ({gap / limit:.0%})" if limit else ""
        verdict = f"missed by {gap:.3g}{unit}{relative}"
    sign = ">=" if at_least else "<="
    return {
        "target": name,
        "value": round(value, 3),
        "limit": f"{sign} {limit:.3g}{unit}",
        "met": met,
        "check": verdict,
    }


def _row(results: list[dict[str, Any]], mode: str, in_flight: int) -> dict[str, Any] | None:
    return next(
        (r for r in results if r["mode"] == mode and r["in_flight"] == in_flight),
        None,
    )


def evaluate(
    results: list[dict[str, Any]],
    steps: int,
    scaling: list[dict[str, Any]],
    memory: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """Every target the figures at hand can decide."""
    checks: list[dict[str, Any]] = []
    counts = sorted({r["in_flight"] for r in results})
    if counts:
        high, low = counts[-1], counts[0]
        orch_high = _row(results, "orchestrator", high)
        for other, factor in (("dbos", MIN_VS_DBOS), ("plain", MIN_VS_PLAIN)):
            base = _row(results, other, high)
            if orch_high and base and base["sagas_per_s"]:
                ratio = orch_high["sagas_per_s"] / base["sagas_per_s"]
                name = f"throughput orchestrator/{other} at {high} in flight"
                checks.append(_check(name, ratio, factor, at_least=True, unit="x"))
        orch_low, plain_low = _row(results, "orchestrator", low), _row(results, "plain", low)
        if orch_low and plain_low:
            added = orch_low["p50_ms"] - plain_low["p50_ms"]
            name = f"p50 added to the plain chain at {low} in flight"
            limit = ADDED_MS_PER_STEP * steps
            checks.append(_check(name, added, limit, at_least=False, unit=" ms"))
        for count in counts:
            row = _row(results, "orchestrator", count)
            if row and row["state_db_commits_per_saga"] is not None:
                name = f"orchestrator DB commits per saga at {count} in flight"
                value = row["state_db_commits_per_saga"]
                checks.append(_check(name, value, steps + 1.0, at_least=False, unit=""))
    for before, after in itertools.pairwise(scaling):
        name = f"throughput {after['workers']} workers / {before['workers']} workers"
        ratio = after["sagas_per_s"] / before["sagas_per_s"] if before["sagas_per_s"] else 0.0
        checks.append(_check(name, ratio, 1.0, at_least=True, unit="x"))
    if memory is not None:
        first, second = memory["checkpoints"]
        name = f"RSS growth from {first} to {second} sagas"
        checks.append(
            _check(name, memory["growth"] * 100, MAX_MEMORY_GROWTH * 100, at_least=False, unit="%")
        )
    return checks


#: Each orchestrated mode and the modes it is compared with.
_VERSUS = {"orchestrator": ("plain", "dbos"), "broker": ("plain", "dbos", "orchestrator")}


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The orchestrator (over HTTP, over a broker) over plain and over DBOS, and over a
    broker against over HTTP, per in-flight count: throughput and p50."""
    out: list[dict[str, Any]] = []
    for count in sorted({r["in_flight"] for r in results}):
        for mode, versus in _VERSUS.items():
            row = _row(results, mode, count)
            if row is None:
                continue
            for other in versus:
                base = _row(results, other, count)
                if base is None:
                    continue
                out.append(
                    {
                        "mode": mode,
                        "in_flight": count,
                        "versus": other,
                        "sagas_per_s": _ratio(row["sagas_per_s"], base["sagas_per_s"]),
                        "p50_ms": _ratio(row["p50_ms"], base["p50_ms"]),
                    }
                )
    return out


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None
