"""Optimistic writes: read, decide, write ``WHERE version = :v``, and on a lost race again.

Every write of a saga row is conditional on the version it was decided from.
A writer that loses the race re-reads and decides again; :func:`retry_conflicts`
is that loop, with one bound for every writer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

T = TypeVar("T")

#: How many lost races one write may take before its writer gives up.
#:
#: A conflict means another writer (a worker recording a call, an API request)
#: changed the row in between; each one is a few milliseconds of work, so a
#: saga that is still changing after 20 fresh reads is being written by a
#: runaway loop or a storm of requests, and a bounded answer ("try again",
#: or "let the lease run out") serves better than spinning on it.
MAX_CONFLICT_RETRIES: Final = 20


class Retry:
    """What an attempt returns when its write lost the race: read again and retry."""

    __slots__ = ()


#: The one :class:`Retry` value attempts return.
RETRY: Final = Retry()


async def retry_conflicts(
    attempt: Callable[[], Awaitable[T | Retry]], exhausted: Callable[[], T]
) -> T:
    """Run ``attempt`` until it returns something other than :data:`RETRY`.

    After :data:`MAX_CONFLICT_RETRIES` lost races, the answer is ``exhausted()``
    (which may raise instead).
    """
    for _ in range(MAX_CONFLICT_RETRIES):
        outcome = await attempt()
        if not isinstance(outcome, Retry):
            return outcome
    return exhausted()
