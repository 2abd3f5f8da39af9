"""The one optimistic-conflict loop: its bound and what it answers."""

from __future__ import annotations

import pytest

from orchestrator.conflicts import MAX_CONFLICT_RETRIES, RETRY, Retry, retry_conflicts


async def test_the_first_answer_that_is_not_a_retry_is_returned() -> None:
    tries: list[int] = []

    async def attempt() -> str | Retry:
        tries.append(1)
        return "written" if len(tries) == 3 else RETRY

    assert await retry_conflicts(attempt, lambda: "gave up") == "written"
    assert len(tries) == 3


async def test_it_gives_up_after_the_named_bound() -> None:
    tries: list[int] = []

    async def attempt() -> bool | Retry:
        tries.append(1)
        return RETRY

    assert await retry_conflicts(attempt, lambda: False) is False
    assert len(tries) == MAX_CONFLICT_RETRIES == 20


async def test_giving_up_may_raise() -> None:
    async def attempt() -> int | Retry:
        return RETRY

    def exhausted() -> int:
        raise LookupError("too fast")

    with pytest.raises(LookupError):
        await retry_conflicts(attempt, exhausted)
