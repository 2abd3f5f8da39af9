"""A ``saga serve`` process is SIGKILLed while participant calls are in flight.

A second process on the same database takes the sagas over once the dead one's
leases run out and finishes every one. The participant's own ledger proves the
promise: every action applied exactly once, although some calls were made twice
(the retry after the crash carried the same ``Idempotency-Key``). The same
holds when the kill lands in the middle of compensations.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter

import httpx
import pytest

from orchestrator.store.engine import create_engine
from orchestrator.store.reads import SagaReader
from orchestrator.store.rows import StoredSaga
from tests.e2e.harness import SagaProcess, SagaServers, register, start_saga, wait_all_final
from tests.support.orchestrator import step
from tests.support.participant import ScriptedParticipant

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]

SAGAS = 30
LEASE_S = 2.0


async def sagas_mid_step(database_url: str, status: str) -> list[StoredSaga]:
    """Sagas stored with ``status`` and a step in that same status, read from the database."""
    engine = create_engine(database_url)
    try:
        page = await SagaReader(engine).page(status=status, definition=None, limit=500, cursor=None)
    finally:
        await engine.dispose()
    return [s for s in page.items if any(st.status.value == status for st in s.state.steps)]


def in_flight(participant: ScriptedParticipant, phase: str = "") -> set[str]:
    """Keys (ending with ``phase``) the participant has received but not answered yet."""
    received = {r["key"] for r in participant.requests if r["key"].endswith(phase)}
    return received - set(participant.answers)


async def start_staggered(api: httpx.AsyncClient, definition: str) -> list[str]:
    """Start ``SAGAS`` sagas a little apart: at the kill some are done, others mid-flight."""
    ids = []
    for n in range(SAGAS):
        ids.append(await start_saga(api, definition, {"n": n}))
        await asyncio.sleep(0.04)
    return ids


async def kill_mid_call(
    process: SagaProcess, participant: ScriptedParticipant, phase: str
) -> set[str]:
    """SIGKILL ``process`` while the participant holds >= 3 unanswered ``phase`` calls.

    The participant runs on this event loop, so nothing changes between the
    snapshot and the kill. Returns the unanswered keys.
    """
    deadline = time.monotonic() + 20
    while len(in_flight(participant, phase)) < 3:
        assert time.monotonic() < deadline, f"no {phase} call was ever in flight"
        await asyncio.sleep(0.01)
    unanswered = in_flight(participant, phase)
    process.sigkill()
    assert process.proc.returncode == -signal.SIGKILL
    assert unanswered, "a participant call must be in progress at the kill"
    return unanswered


async def test_sigkill_mid_flight_then_a_new_process_finishes_every_saga(
    saga_servers: SagaServers, participant: ScriptedParticipant
) -> None:
    participant.delay["b"] = 0.5  # the middle step is slow: calls are in flight for a while
    first = await saga_servers.start(lease_s=LEASE_S)
    async with httpx.AsyncClient(base_url=first.url, timeout=30) as api:
        await register(api, "crash", [step("a"), step("b"), step("c")])
        ids = await start_staggered(api, "crash")
    unanswered = await kill_mid_call(first, participant, ":action")
    killed_at = time.monotonic()
    finished_before_kill = sum(1 for r in participant.order if r == "action:c")
    assert finished_before_kill < SAGAS, "every saga finished before the kill; nothing to recover"

    # What the dead process left in the database: sagas running, a step running, leased.
    left = await sagas_mid_step(saga_servers.database_url, "running")
    assert left, "expected sagas left running (with a step running) by the killed process"
    assert all(s.lease_owner is not None for s in left)

    second = await saga_servers.start(lease_s=LEASE_S)
    async with httpx.AsyncClient(base_url=second.url, timeout=30) as api:
        final = await wait_all_final(api, ids, timeout_s=30)
        recovered_in = time.monotonic() - killed_at

    print(
        f"\n[crash recovery] killed with {len(unanswered)} participant calls in flight, "
        f"{len(left)} sagas left running, "
        f"{finished_before_kill}/{SAGAS} sagas finished before the kill; "
        f"all {SAGAS} final {recovered_in:.1f}s after the kill"
    )
    assert Counter(final.values()) == Counter({"completed": SAGAS})

    # From the participant's side: each action applied exactly once, nothing compensated.
    expected = {f"{i}:{s}:action" for i in ids for s in "abc"}
    assert set(participant.applied) == expected
    assert all(n == 1 for n in participant.applied.values()), participant.applied.most_common(3)
    assert not participant.compensated
    assert not participant.tombstones
    # ... although some were asked for more than once, always under the same key.
    requests_per_key = Counter(r["key"] for r in participant.requests)
    repeated = {k: n for k, n in requests_per_key.items() if n > 1}
    assert repeated, "no call was repeated after the crash"
    assert unanswered <= set(repeated), "an in-flight call was not retried after the crash"
    assert set(requests_per_key) == expected
    assert second.problems() == []


async def test_sigkill_mid_compensation_then_every_saga_is_compensated_once(
    saga_servers: SagaServers, participant: ScriptedParticipant
) -> None:
    participant.delay["b"] = 0.5  # b's action and b's compensation are slow
    participant.steady["c"] = 409  # c says no: every saga compensates b, then a
    first = await saga_servers.start(lease_s=LEASE_S)
    async with httpx.AsyncClient(base_url=first.url, timeout=30) as api:
        await register(api, "undo", [step("a"), step("b"), step("c")])
        ids = await start_staggered(api, "undo")
    unanswered = await kill_mid_call(first, participant, ":compensation")
    left = await sagas_mid_step(saga_servers.database_url, "compensating")
    assert left, "expected sagas left compensating (a step compensating) by the killed process"

    second = await saga_servers.start(lease_s=LEASE_S)
    async with httpx.AsyncClient(base_url=second.url, timeout=30) as api:
        final = await wait_all_final(api, ids, timeout_s=30)
    print(
        f"\n[crash recovery] killed with {len(unanswered)} compensations in flight, "
        f"{len(left)} sagas left compensating; all {SAGAS} compensated after the restart"
    )
    assert Counter(final.values()) == Counter({"compensated": SAGAS})
    applied = {f"{i}:{s}:action" for i in ids for s in "ab"}
    assert set(participant.applied) == applied
    assert all(n == 1 for n in participant.applied.values())
    assert set(participant.compensated) == applied
    assert all(n == 1 for n in participant.compensated.values()), participant.compensated
    assert not participant.tombstones
    requests_per_key = Counter(r["key"] for r in participant.requests)
    assert all(requests_per_key[k] > 1 for k in unanswered), "an in-flight compensation was lost"
    assert second.problems() == []
