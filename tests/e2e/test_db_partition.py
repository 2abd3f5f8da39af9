"""A worker partitioned from its database stops acting once its lease runs out.

The worker reaches PostgreSQL through a partition proxy; the link is cut
while it has calls in flight (both ways, or only the answers), so its
statements get no answer, its renewals none either, and nothing is refused.
By its own clock its leases run out: from then on it makes no participant
call (its database timeouts keep it from hanging meanwhile). Another worker,
on a healthy link, takes the sagas over and finishes them; when the link
heals, the partitioned worker's late writes are fenced off by the version.
Every effect is applied once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest
from sqlalchemy.engine import make_url

from orchestrator.harness.proxy import Cut, PartitionProxy
from tests.e2e.harness import SagaServers, history, register, start_saga, wait_all_final
from tests.e2e.test_lease_takeover import completed_transitions, in_flight
from tests.support.orchestrator import step
from tests.support.participant import ScriptedParticipant

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]

LEASE_S = 1.5
#: Past the lease: what the worker's clock and ours may differ by in converting it.
CLOCK_SLACK_S = 0.25


def errors(metrics: dict[str, float]) -> float:
    return sum(v for k, v in metrics.items() if k.startswith("saga_database_errors_total"))


@pytest.mark.parametrize("cut", ["both", "to_client"])
async def test_a_worker_cut_from_the_database_makes_no_call_after_its_lease(
    saga_servers: SagaServers, participant: ScriptedParticipant, cut: Cut
) -> None:
    sagas = 12
    participant.delay["b"] = 0.5
    url = make_url(saga_servers.database_url)
    async with PartitionProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
        cut_off = await saga_servers.start(
            lease_s=LEASE_S,
            database_url=proxied,
            database_connect_timeout_s=1.0,
            database_command_timeout_s=1.0,
        )
        async with httpx.AsyncClient(base_url=cut_off.url, timeout=30) as api:
            await register(api, "partition", [step("a"), step("b"), step("c")])
            ids = [await start_saga(api, "partition", {"n": n}) for n in range(sagas)]
        deadline = time.monotonic() + 20
        while len(in_flight(participant)) < 3:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)

        proxy.cut(cut)
        # Every lease it holds was last written before the cut: by now each has run out.
        await asyncio.sleep(LEASE_S + CLOCK_SLACK_S)
        calls_by_then = len(participant.requests)
        await asyncio.sleep(2 * LEASE_S)  # alone with the participant, cut off
        assert len(participant.requests) == calls_by_then, "it called after its lease ran out"

        other = await saga_servers.start(lease_s=LEASE_S)
        async with httpx.AsyncClient(base_url=other.url, timeout=30) as api:
            final = await wait_all_final(api, ids, timeout_s=30)
            proxy.heal()
            await asyncio.sleep(2 * LEASE_S)  # the healed one tries what it had in hand
            histories = await asyncio.gather(*(history(api, i) for i in ids))
            after = await wait_all_final(api, ids, timeout_s=5)
        healed = await cut_off.metrics()
    print(
        f"\n[db partition, {cut}] after the heal: "
        f"saga_calls_withheld_total = {healed.get('saga_calls_withheld_total', 0):g}, "
        f"saga_zombie_calls_total = {healed.get('saga_zombie_calls_total', 0):g}, "
        f"database errors = {errors(healed):g}"
    )
    assert Counter(final.values()) == Counter({"completed": sagas})
    assert after == final
    assert [completed_transitions(h) for h in histories] == [1] * sagas
    assert set(participant.applied) == {f"{i}:{s}:action" for i in ids for s in "abc"}
    assert all(n == 1 for n in participant.applied.values())
    assert healed.get("saga_zombie_calls_total", 0) == 0
    # It noticed the silent database by its own timeouts rather than hanging.
    assert errors(healed) > 0
    assert cut_off.alive()
