"""The benchmark's arithmetic: the load loop, percentiles, medians, ratios and targets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator.bench.load import Ended, keep_in_flight, percentile_ms
from orchestrator.bench.measure import medians
from orchestrator.bench.targets import evaluate, ratios


async def test_the_load_keeps_exactly_n_in_flight_until_the_last_ones_drain() -> None:
    running = peak = 0

    async def run_one() -> Ended:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1
        return Ended(True, 0.001)

    result = await keep_in_flight(run_one, 23, 5)
    assert (result.sagas, result.completed, peak) == (23, 23, 5)
    assert result.sagas_per_s > 0


def test_percentiles_are_nearest_rank_and_the_median_is_the_median() -> None:
    values = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert percentile_ms(values, 0.5) == pytest.approx(50.5)
    assert percentile_ms(values, 0.99) == pytest.approx(99)
    assert percentile_ms([], 0.99) == 0.0


def _row(
    mode: str, in_flight: int, rate: float, p50: float, commits: float | None
) -> dict[str, Any]:
    return {
        "mode": mode,
        "in_flight": in_flight,
        "sagas": 10,
        "completed": 10,
        "sagas_per_s": rate,
        "p50_ms": p50,
        "state_db_commits_per_saga": commits,
    }


def test_medians_sum_the_counts_and_take_the_median_of_the_figures() -> None:
    merged = medians([_row("plain", 1, r, 5.0, None) for r in (10.0, 30.0, 20.0)])
    assert merged["sagas"] == 30
    assert merged["sagas_per_s"] == 20.0
    assert merged["state_db_commits_per_saga"] is None
    assert merged["runs"] == 3


def test_every_target_is_met_or_missed_by_its_gap() -> None:
    results = [
        _row("plain", 1, 100.0, 10.0, None),
        _row("orchestrator", 1, 80.0, 14.0, 4.0),
        _row("dbos", 1, 20.0, 40.0, 12.0),
        _row("plain", 50, 1000.0, 50.0, None),
        _row("orchestrator", 50, 500.0, 100.0, 4.5),
        _row("dbos", 50, 100.0, 500.0, 12.0),
    ]
    scaling = [{"workers": 1, "sagas_per_s": 100.0}, {"workers": 2, "sagas_per_s": 90.0}]
    memory = {"checkpoints": [2000, 20000], "growth": 0.05}
    checks = {t["target"]: t for t in evaluate(results, 3, scaling, memory)}
    assert checks["throughput orchestrator/dbos at 50 in flight"]["check"] == "met"
    plain = checks["throughput orchestrator/plain at 50 in flight"]
    assert plain["check"] == "missed by 0.1x (17%)"
    assert checks["p50 added to the plain chain at 1 in flight"]["check"] == "met"
    assert checks["orchestrator DB commits per saga at 1 in flight"]["met"]
    assert (
        checks["orchestrator DB commits per saga at 50 in flight"]["check"] == "missed by 0.5 (12%)"
    )
    assert checks["throughput 2 workers / 1 workers"]["check"].startswith("missed by 0.1x")
    assert checks["RSS growth from 2000 to 20000 sagas"]["met"]
    by = {(r["in_flight"], r["versus"]): r["sagas_per_s"] for r in ratios(results)}
    assert by == {(1, "plain"): 0.8, (1, "dbos"): 4.0, (50, "plain"): 0.5, (50, "dbos"): 5.0}


def test_the_broker_mode_is_compared_with_plain_dbos_and_the_orchestrator_over_http() -> None:
    results = [
        _row("plain", 50, 1000.0, 50.0, None),
        _row("orchestrator", 50, 500.0, 100.0, 4.0),
        _row("broker", 50, 400.0, 125.0, 4.0),
        _row("dbos", 50, 100.0, 500.0, 12.0),
    ]
    by = {(r["mode"], r["versus"]): r for r in ratios(results)}
    assert set(by) == {
        ("orchestrator", "plain"),
        ("orchestrator", "dbos"),
        ("broker", "plain"),
        ("broker", "dbos"),
        ("broker", "orchestrator"),
    }
    assert by[("broker", "orchestrator")]["sagas_per_s"] == 0.8
    assert by[("broker", "orchestrator")]["p50_ms"] == 1.25
    assert by[("broker", "dbos")]["sagas_per_s"] == 4.0
    # The targets are the HTTP orchestrator's: the broker row adds none.
    assert not [t for t in evaluate(results, 3, [], None) if "broker" in t["target"]]
