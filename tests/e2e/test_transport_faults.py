"""Transport-level fault rules (``/v1/faults``) against real HTTP and real PostgreSQL.

- ``drop_response`` on half of step ``b``'s calls: the participant applies the
  effect, the orchestrator never sees the answer and retries under the same
  ``Idempotency-Key``. Every saga still completes and every effect is applied once.
- ``drop_request``: the participant never sees the dropped attempts.
- ``drop_response`` on compensations: every applied action is compensated once.
- A ``count``-limited ``error`` rule fires exactly ``count`` times, even with two
  ``saga serve`` processes drawing from it at once (the count lives in the database).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.e2e.harness import SagaServers, history, register, start_saga, wait_all_final
from tests.support.orchestrator import fast_settings, running_orchestrator, step
from tests.support.participant import ScriptedParticipant

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

#: Enough attempts that a step never exhausts its budget on injected faults alone
#: (0.5 ** 20 per saga for the 50 % rule; more than ``count`` for the counted one).
PATIENT = {"max_attempts": 20, "initial_backoff_ms": 5, "max_backoff_ms": 20}


@pytest.fixture
async def api(database_url: str, participant_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An orchestrator (API + worker) served in the test process over loopback."""
    settings = fast_settings(database_url, {"p": [participant_url]})
    async with running_orchestrator(settings) as client:
        yield client


async def add_rule(client: httpx.AsyncClient, rule: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/faults", json=rule)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def rules(client: httpx.AsyncClient) -> dict[int, dict[str, Any]]:
    response = await client.get("/v1/faults")
    response.raise_for_status()
    return {r["id"]: r for r in response.json()["items"]}


def requests_by_key(participant: ScriptedParticipant) -> Counter[str]:
    return Counter(r["key"] for r in participant.requests)


async def test_dropped_responses_are_retried_and_applied_once(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    sagas = 50
    rule = await add_rule(
        api,
        {"participant": "p", "step": "b", "mode": "drop_response", "probability": 0.5, "seed": 7},
    )
    await register(api, "lossy", [step("a"), step("b", retry=PATIENT), step("c")])
    ids = [await start_saga(api, "lossy", {"n": n}) for n in range(sagas)]

    final = await wait_all_final(api, ids, timeout_s=30)
    assert Counter(final.values()) == Counter({"completed": sagas})

    fired = (await rules(api))[rule["id"]]["fired"]
    print(f"\n[transport faults] drop_response p=0.5 seed=7 on step b fired {fired} times")
    assert fired > 0

    # Every effect applied exactly once, though b was asked for again after each drop.
    expected = {f"{i}:{s}:action" for i in ids for s in "abc"}
    assert set(participant.applied) == expected
    assert all(n == 1 for n in participant.applied.values()), participant.applied.most_common(3)
    assert not participant.compensated
    per_key = requests_by_key(participant)
    b_requests = sum(n for k, n in per_key.items() if ":b:" in k)
    assert b_requests == sagas + fired  # each dropped answer cost exactly one more request
    assert all(per_key[f"{i}:{s}:action"] == 1 for i in ids for s in "ac")

    # The orchestrator's history agrees: every drop is recorded as a transient call.
    histories = await asyncio.gather(*(history(api, i) for i in ids))
    dropped = [
        e
        for items in histories
        for e in items
        if e["kind"] == "call" and (e["detail"] or {}).get("fault") == "drop_response"
    ]
    assert len(dropped) == fired
    assert {(e["step"], e["outcome"]) for e in dropped} == {("b", "transient")}


async def test_dropped_requests_never_reach_the_participant(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    sagas = 30
    rule = await add_rule(
        api,
        {"participant": "p", "step": "b", "mode": "drop_request", "probability": 0.5, "seed": 3},
    )
    await register(api, "mute", [step("a"), step("b", retry=PATIENT), step("c")])
    ids = [await start_saga(api, "mute", {"n": n}) for n in range(sagas)]
    final = await wait_all_final(api, ids, timeout_s=30)
    assert Counter(final.values()) == Counter({"completed": sagas})
    fired = (await rules(api))[rule["id"]]["fired"]
    assert fired > 0
    # A dropped request is never sent: the participant saw each call exactly once.
    assert set(requests_by_key(participant).values()) == {1}
    assert set(participant.applied) == {f"{i}:{s}:action" for i in ids for s in "abc"}
    assert all(n == 1 for n in participant.applied.values())
    # ... while the orchestrator made one attempt more per drop.
    steps = [(await api.get(f"/v1/sagas/{i}")).json()["steps"][1]["attempts"] for i in ids]
    assert sum(steps) == sagas + fired


async def test_dropped_compensation_responses_compensate_once(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    sagas = 30
    participant.steady["c"] = 409  # c says no: b then a are compensated
    rule = await add_rule(
        api,
        {
            "participant": "p",
            "phase": "compensation",
            "mode": "drop_response",
            "probability": 0.5,
            "seed": 11,
        },
    )
    steps = [step("a", retry=PATIENT), step("b", retry=PATIENT), step("c")]
    await register(api, "undo", steps)
    ids = [await start_saga(api, "undo", {"n": n}) for n in range(sagas)]
    final = await wait_all_final(api, ids, timeout_s=30)
    assert Counter(final.values()) == Counter({"compensated": sagas})
    fired = (await rules(api))[rule["id"]]["fired"]
    assert fired > 0
    # Every applied action was compensated exactly once; c never took effect.
    applied = {f"{i}:{s}:action" for i in ids for s in "ab"}
    assert set(participant.applied) == applied
    assert all(n == 1 for n in participant.applied.values())
    assert set(participant.compensated) == applied
    assert all(n == 1 for n in participant.compensated.values())
    assert not participant.tombstones
    compensation_requests = sum(
        n for k, n in requests_by_key(participant).items() if k.endswith(":compensation")
    )
    assert compensation_requests == 2 * sagas + fired


async def test_counted_error_rule_fires_exactly_count_times_across_two_processes(
    saga_servers: SagaServers, participant: ScriptedParticipant
) -> None:
    sagas, count = 30, 5
    servers = await asyncio.gather(saga_servers.start(), saga_servers.start())
    clients = [httpx.AsyncClient(base_url=s.url, timeout=30) for s in servers]
    try:
        rule = await add_rule(
            clients[0],
            {"participant": "p", "step": "c", "mode": "error", "status": 503, "count": count},
        )
        await asyncio.sleep(0.3)  # both processes re-read the rules (SAGA_FAULT_REFRESH_S)
        await register(clients[0], "counted", [step("a"), step("b"), step("c", retry=PATIENT)])
        ids = await asyncio.gather(
            *(start_saga(clients[n % 2], "counted", {"n": n}) for n in range(sagas))
        )

        final = await wait_all_final(clients[1], ids, timeout_s=30)
        assert Counter(final.values()) == Counter({"completed": sagas})
        listed = (await rules(clients[1]))[rule["id"]]
        assert listed["fired"] == count, listed

        histories = await asyncio.gather(*(history(clients[0], i) for i in ids))
        injected = [
            e
            for items in histories
            for e in items
            if e["kind"] == "call" and (e["detail"] or {}).get("fault") == "error"
        ]
        assert len(injected) == count
        assert {(e["step"], e["outcome"], e["detail"]["status"]) for e in injected} == {
            ("c", "transient", 503)
        }
        metrics = [await s.metrics() for s in servers]
    finally:
        for client in clients:
            await client.aclose()

    per_process = [m.get('saga_faults_fired_total{mode="error"}', 0.0) for m in metrics]
    print(f"\n[transport faults] counted error rule: fired per process = {per_process}")
    assert sum(per_process) == count

    # An injected error never reaches the participant: one request per key, applied once.
    expected = {f"{i}:{s}:action" for i in ids for s in "abc"}
    assert set(participant.applied) == expected
    assert all(n == 1 for n in participant.applied.values())
    assert set(requests_by_key(participant).values()) == {1}
    for server in servers:
        assert server.problems() == [], server.name
