"""Retry delays: exponential backoff with deterministic jitter (pure)."""

from __future__ import annotations

import random
from datetime import timedelta

from orchestrator.machine.state import RetryPlan


def backoff(policy: RetryPlan, failures: int, jitter_seed: str) -> timedelta:
    """Delay before the next attempt after ``failures`` consecutive failures (>= 1).

    The jitter is drawn from a generator seeded by ``jitter_seed`` so the same
    saga, step and attempt always wait the same time: replays and tests are
    deterministic, while different sagas still spread out.
    """
    # The exponent is bounded so a step that fails for hours cannot overflow a
    # float; past it the cap has long applied anyway.
    exponent = min(max(failures - 1, 0), 64)
    base = policy.initial_backoff_ms * policy.multiplier**exponent
    capped = min(base, float(policy.max_backoff_ms))
    spread = capped * policy.jitter
    jittered = capped - spread + 2 * spread * random.Random(jitter_seed).random()
    return timedelta(milliseconds=max(jittered, 0.0))
