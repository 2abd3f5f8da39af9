"""Keep N sagas in flight until a number have ended, and time each one.

A mode gives one coroutine, ``run_one``, that starts a saga and returns when
the client has seen it end (:class:`Ended`). The load is N tasks, each
running ``run_one`` back to back while sagas remain, so exactly N are in
flight until the last ones drain.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Ended:
    """One saga as the client saw it end."""

    completed: bool
    latency_s: float
    #: From the start to the moment the client saw the end, when that differs from
    #: ``latency_s`` (an end time read from the saga's row): an upper bound of it.
    seen_s: float | None = None


RunOne = Callable[[], Awaitable[Ended]]


@dataclass(frozen=True)
class LoadResult:
    """What the client saw of one load: how many, how fast, how long each."""

    sagas: int
    completed: int
    elapsed_s: float
    latencies_s: list[float]
    seen_s: list[float]

    @property
    def sagas_per_s(self) -> float:
        """Sagas ended per second of the load's wall time."""
        return self.sagas / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_ms(self, fraction: float) -> float:
        """Nearest-rank percentile (the median for 0.5) of the saga latencies, in ms."""
        return percentile_ms(self.latencies_s, fraction)


def percentile_ms(values_s: list[float], fraction: float) -> float:
    """Nearest-rank percentile (the median for 0.5) of ``values_s``, in milliseconds."""
    ordered = sorted(values_s)
    if not ordered:
        return 0.0
    if fraction == 0.5:
        return statistics.median(ordered) * 1000
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1] * 1000


async def keep_in_flight(run_one: RunOne, total: int, in_flight: int) -> LoadResult:
    """Run ``total`` sagas with ``in_flight`` of them running at any moment."""
    remaining = total
    ended: list[Ended] = []

    async def lane() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            ended.append(await run_one())

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(max(1, min(in_flight, total)))))
    elapsed = time.perf_counter() - started
    return LoadResult(
        sagas=len(ended),
        completed=sum(1 for e in ended if e.completed),
        elapsed_s=elapsed,
        latencies_s=[e.latency_s for e in ended],
        seen_s=[e.seen_s for e in ended if e.seen_s is not None],
    )
