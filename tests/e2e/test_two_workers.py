"""Two ``saga serve`` processes (API + worker each) share one PostgreSQL database.

200 sagas are started through both APIs alternately; both workers claim from the
same table. Every saga must end ``completed`` exactly once: each action applied
once at the participant, and each saga's history showing one transition to
``completed``. Version conflicts and lost leases are allowed (and printed): the
test is about nothing being lost or doubled, not about contention happening.

Also: one start ``Idempotency-Key`` raced through both APIs creates one saga.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from tests.e2e.harness import (
    SagaServers,
    history,
    register,
    start_saga,
    wait_all_final,
)
from tests.support.orchestrator import step
from tests.support.participant import ScriptedParticipant

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]

SAGAS = 200


async def test_two_processes_complete_every_saga_exactly_once(
    saga_servers: SagaServers, participant: ScriptedParticipant
) -> None:
    participant.delay["b"] = 0.02  # a little overlap between the workers' calls
    servers = await asyncio.gather(saga_servers.start(), saga_servers.start())
    clients = [httpx.AsyncClient(base_url=s.url, timeout=30) for s in servers]
    try:
        await register(clients[0], "pair", [step("a"), step("b"), step("c")])
        await register(clients[1], "pair", [step("a"), step("b"), step("c")])  # same: 200

        sem = asyncio.Semaphore(20)

        async def start(n: int) -> str:
            async with sem:
                return await start_saga(clients[n % 2], "pair", {"n": n})

        ids = await asyncio.gather(*(start(n) for n in range(SAGAS)))
        assert len(set(ids)) == SAGAS

        final = await wait_all_final(clients[0], ids, timeout_s=45)
        assert Counter(final.values()) == Counter({"completed": SAGAS})
        # Both APIs agree.
        assert await wait_all_final(clients[1], ids, timeout_s=5) == final

        # Exactly once, from the participant's side.
        expected = {f"{i}:{s}:action" for i in ids for s in "abc"}
        assert set(participant.applied) == expected
        assert all(n == 1 for n in participant.applied.values()), participant.applied.most_common(3)
        assert not participant.compensated

        # Exactly once, from the orchestrator's history.
        sem = asyncio.Semaphore(20)

        async def completions(n: int, saga_id: str) -> int:
            async with sem:
                items = await history(clients[n % 2], saga_id)
            return sum(
                1
                for e in items
                if e["kind"] == "transition" and (e["detail"] or {}).get("to") == "completed"
            )

        counts = await asyncio.gather(*(completions(n, i) for n, i in enumerate(ids)))
        wrong = {i: n for i, n in zip(ids, counts, strict=True) if n != 1}
        assert not wrong, f"sagas without exactly one transition to completed: {wrong}"

        metrics = [await s.metrics() for s in servers]
    finally:
        for client in clients:
            await client.aclose()

    conflicts = sum(m.get("saga_version_conflicts_total", 0.0) for m in metrics)
    lost = sum(m.get("saga_leases_lost_total", 0.0) for m in metrics)
    claimed = [m.get("saga_claimed_total", 0.0) for m in metrics]
    finished = [
        m.get('saga_finished_total{definition="pair",status="completed"}', 0.0) for m in metrics
    ]
    print(
        f"\n[two workers] {SAGAS} sagas completed; "
        f"saga_version_conflicts_total (sum of both) = {conflicts:g}; "
        f"saga_leases_lost_total (sum of both) = {lost:g}; "
        f"claims per process = {[f'{c:g}' for c in claimed]}; "
        f"completions recorded per process = {[f'{f:g}' for f in finished]}"
    )
    assert sum(finished) == SAGAS
    for server in servers:
        assert server.problems() == [], server.name


async def test_one_start_key_raced_through_both_apis_creates_one_saga(
    saga_servers: SagaServers, participant: ScriptedParticipant
) -> None:
    servers = await asyncio.gather(saga_servers.start(), saga_servers.start())
    clients = [httpx.AsyncClient(base_url=s.url, timeout=30) for s in servers]
    try:
        await register(clients[0], "once", [step("a")])
        body = {"definition": "once", "input": {"order": 42}}
        headers = {"Idempotency-Key": "order-42"}
        answers = await asyncio.gather(
            *(clients[n % 2].post("/v1/sagas", json=body, headers=headers) for n in range(40))
        )
        codes = Counter(r.status_code for r in answers)
        assert codes == Counter({201: 1, 200: 39}), [
            r.text for r in answers if r.status_code >= 300
        ]
        ids = {r.json()["id"] for r in answers}
        assert len(ids) == 1
        (saga_id,) = ids
        assert await wait_all_final(clients[1], [saga_id], timeout_s=10) == {saga_id: "completed"}
        other = await clients[1].post(
            "/v1/sagas", json={**body, "input": {"order": 43}}, headers=headers
        )
        assert other.status_code == 409, other.text
        listed = (await clients[0].get("/v1/sagas", params={"limit": 500})).json()["items"]
        assert [s["id"] for s in listed] == [saga_id]
    finally:
        for client in clients:
            await client.aclose()
    assert participant.applied == Counter({f"{saga_id}:a:action": 1})
