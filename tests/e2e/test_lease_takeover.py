"""Leases hand sagas over between live processes.

- A process frozen (SIGSTOP) past its leases is fenced off: another process takes
  its sagas over and finishes them; when the frozen one wakes up (SIGCONT) with
  answers for calls it made before, its writes lose the version race and it lets
  go. Nothing is applied twice, nothing is recorded twice.
- The same freeze, landing at any instant of a stream of writes, never leaves a
  row lock behind: on PostgreSQL every worker write is one statement in its own
  transaction, so there is no window between a write and its commit to be
  frozen in (and, for the multi-statement operator paths, PostgreSQL ends a
  session idle in a transaction for longer than the lease). Its sagas are
  taken over once the lease has run out.
- A process stopped with SIGTERM lets its in-flight calls finish, records them,
  releases its leases and exits; another process resumes the sagas at once
  (without waiting for the leases to run out).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.store.engine import create_engine
from tests.e2e.harness import (
    SagaProcess,
    SagaServers,
    history,
    register,
    start_saga,
    wait_all_final,
)
from tests.support.orchestrator import step
from tests.support.participant import ScriptedParticipant

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]

OPEN_TRANSACTIONS = sa.text(
    "SELECT pid, state, backend_xid::text AS xid, left(query, 60) AS query"
    " FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND xact_start IS NOT NULL"
)


@asynccontextmanager
async def database(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def open_transactions(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(OPEN_TRANSACTIONS)).all())


async def freeze_when(
    process: SagaProcess,
    engine: AsyncEngine,
    wanted: Callable[[list[Any]], bool],
    tries: int = 300,
) -> list[Any]:
    """SIGSTOP ``process`` until the sessions it left open satisfy ``wanted``; return them.

    Only ``process`` talks to the database at this point, so every other open
    transaction is one of its own, frozen with it.
    """
    for _ in range(tries):
        os.kill(process.pid, signal.SIGSTOP)
        await asyncio.sleep(0.05)  # let statements the server is still running finish
        sessions = await open_transactions(engine)
        if wanted(sessions):
            return sessions
        os.kill(process.pid, signal.SIGCONT)
        await asyncio.sleep(random.uniform(0.005, 0.03))
    raise AssertionError(f"could not freeze {process.name} in the wanted state")


def in_flight(participant: ScriptedParticipant) -> set[str]:
    return {r["key"] for r in participant.requests} - set(participant.answers)


def completed_transitions(items: list[dict[str, Any]]) -> int:
    return sum(
        1
        for e in items
        if e["kind"] == "transition" and (e["detail"] or {}).get("to") == "completed"
    )


async def test_a_frozen_process_is_fenced_off_and_its_sagas_taken_over(
    saga_servers: SagaServers, participant: ScriptedParticipant
) -> None:
    sagas, lease_s = 20, 1.0
    participant.delay["b"] = 0.5
    frozen = await saga_servers.start(lease_s=lease_s)
    async with httpx.AsyncClient(base_url=frozen.url, timeout=30) as api:
        await register(api, "fence", [step("a"), step("b"), step("c")])
        ids = [await start_saga(api, "fence", {"n": n}) for n in range(sagas)]
    deadline = time.monotonic() + 20
    while len(in_flight(participant)) < 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)

    async with database(saga_servers.database_url) as engine:
        # Frozen between transactions: it holds leases, no row locks.
        await freeze_when(frozen, engine, lambda sessions: not sessions)
    unanswered = in_flight(participant)
    try:
        other = await saga_servers.start(lease_s=lease_s)
        async with httpx.AsyncClient(base_url=other.url, timeout=30) as api:
            final = await wait_all_final(api, ids, timeout_s=20)
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    await asyncio.sleep(1.5)  # the woken process tries to write what it had in hand
    async with httpx.AsyncClient(base_url=other.url, timeout=30) as api:
        histories = await asyncio.gather(*(history(api, i) for i in ids))
        after = await wait_all_final(api, ids, timeout_s=5)
    woken = await frozen.metrics()
    print(
        f"\n[lease takeover] frozen with {len(unanswered)} calls in flight; after SIGCONT: "
        f"saga_version_conflicts_total = {woken.get('saga_version_conflicts_total', 0):g}, "
        f"saga_leases_lost_total = {woken.get('saga_leases_lost_total', 0):g}"
    )
    assert Counter(final.values()) == Counter({"completed": sagas})
    assert after == final
    assert [completed_transitions(h) for h in histories] == [1] * sagas
    assert set(participant.applied) == {f"{i}:{s}:action" for i in ids for s in "abc"}
    assert all(n == 1 for n in participant.applied.values())
    assert woken.get("saga_leases_lost_total", 0) > 0  # it did have something to let go
    assert frozen.alive()
    assert frozen.problems() == []
    assert other.problems() == []


async def test_a_process_frozen_amid_writes_holds_no_lock_and_is_taken_over(
    saga_servers: SagaServers, participant: ScriptedParticipant
) -> None:
    sagas, lease_s, freezes = 20, 1.0, 40
    participant.steady["b"] = 503  # b retries quickly: a steady stream of write transactions
    retry = {"max_attempts": 1000, "initial_backoff_ms": 20, "max_backoff_ms": 50}
    frozen = await saga_servers.start(lease_s=lease_s)
    async with httpx.AsyncClient(base_url=frozen.url, timeout=30) as api:
        await register(api, "stall", [step("a"), step("b", retry=retry), step("c")])
        ids = [await start_saga(api, "stall", {"n": n}) for n in range(sagas)]
    while sum(1 for r in participant.requests if r["step"] == "b") < 2 * sagas:
        await asyncio.sleep(0.01)

    async with database(saga_servers.database_url) as engine:
        # Freeze at many random instants; whenever it stops, nothing it began holds a lock.
        seen: list[Any] = []
        for n in range(freezes):
            os.kill(frozen.pid, signal.SIGSTOP)
            await asyncio.sleep(0.05)  # let statements the server is still running finish
            seen.extend(s for s in await open_transactions(engine) if s.xid is not None)
            if n < freezes - 1:
                os.kill(frozen.pid, signal.SIGCONT)
                await asyncio.sleep(random.uniform(0.005, 0.03))
    assert seen == [], f"a frozen process left write transactions open: {seen}"
    try:
        participant.steady["b"] = 200
        other = await saga_servers.start(lease_s=lease_s)
        async with httpx.AsyncClient(base_url=other.url, timeout=30) as api:
            # Every lease of the frozen process has run out well before this deadline.
            final = await wait_all_final(api, ids, timeout_s=lease_s + 5)
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    assert Counter(final.values()) == Counter({"completed": sagas})


async def test_sigterm_releases_leases_for_an_immediate_takeover(
    saga_servers: SagaServers, participant: ScriptedParticipant
) -> None:
    sagas = 20
    participant.delay["b"] = 0.5
    leaving = await saga_servers.start(lease_s=30.0)  # a takeover by expiry would be far too late
    async with httpx.AsyncClient(base_url=leaving.url, timeout=30) as api:
        await register(api, "handover", [step("a"), step("b"), step("c")])
        ids = [await start_saga(api, "handover", {"n": n}) for n in range(sagas)]
    deadline = time.monotonic() + 20
    while len(in_flight(participant)) < 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    unanswered = in_flight(participant)
    await leaving.stop(timeout_s=20)
    # uvicorn re-raises the signal after a graceful shutdown: -SIGTERM, not a SIGKILL.
    assert leaving.proc.returncode in (0, -signal.SIGTERM), leaving.log()
    assert leaving.problems() == []
    async with database(saga_servers.database_url) as engine, engine.connect() as conn:
        leased = (
            await conn.execute(sa.text("SELECT count(*) FROM sagas WHERE lease_owner IS NOT NULL"))
        ).scalar_one()
    assert leased == 0, "SIGTERM left leases behind"
    # The calls in flight at SIGTERM were answered and recorded before the process left.
    answered_then = Counter(r["key"] for r in participant.requests)

    stopped_at = time.monotonic()
    successor = await saga_servers.start(lease_s=30.0)
    async with httpx.AsyncClient(base_url=successor.url, timeout=30) as api:
        final = await wait_all_final(api, ids, timeout_s=20)
    took = time.monotonic() - stopped_at
    print(f"\n[graceful handover] all {sagas} sagas completed {took:.1f}s after SIGTERM")
    assert Counter(final.values()) == Counter({"completed": sagas})
    assert took < 15, "sagas waited for the lease to expire: SIGTERM did not release them"
    requests_per_key = Counter(r["key"] for r in participant.requests)
    assert all(requests_per_key[k] == answered_then[k] == 1 for k in unanswered)
    assert set(participant.applied) == {f"{i}:{s}:action" for i in ids for s in "abc"}
    assert all(n == 1 for n in participant.applied.values())
