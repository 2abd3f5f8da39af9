"""The database stopped for 10 s in the middle of 200 running sagas.

Every saga is held in the middle of its second step (the participant keeps the
calls waiting) when the database stops; the participant answers them while it
is still down. Meanwhile the API answers 503 with ``Retry-After`` quickly;
workers keep what they learnt, back off, and record it when the database is
back. Afterwards every saga completed exactly once: one ``completed``
transition each, every effect applied once at the participant, nothing
compensated.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest

from orchestrator.store import migrate
from tests.hardening.cluster import Cluster, postgres_bin, throwaway_cluster
from tests.hardening.helpers import assert_error, register
from tests.support.orchestrator import fast_settings, running_orchestrator, step
from tests.support.participant import ScriptedParticipant
from tests.support.servers import serve_app

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(postgres_bin() is None, reason="needs PostgreSQL server binaries"),
]

SAGAS = 200
OUTAGE_S = 10.0
STEPS = ("reserve", "charge", "ship")
RETRY = {"max_attempts": 50, "initial_backoff_ms": 50}


@dataclass
class GatedParticipant(ScriptedParticipant):
    """Holds every ``charge`` action until ``gate`` is set; ``waiting`` names their sagas."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: set[str] = field(default_factory=set)

    async def _handle(self, step: str, phase: str, request: Any) -> Any:
        if step == "charge" and phase == "action":
            self.waiting.add(request.headers["X-Saga-Id"])
            await self.gate.wait()
        return await super()._handle(step, phase, request)


@pytest.fixture
def gated() -> GatedParticipant:
    return GatedParticipant()


@pytest.fixture
async def gated_url(gated: GatedParticipant) -> AsyncIterator[str]:
    async with serve_app(gated.app()) as url:
        try:
            yield url
        finally:
            gated.gate.set()  # held requests must end, or the server never stops


async def _calls_held(participant: GatedParticipant, timeout_s: float) -> None:
    """Wait until the orchestrator's participant connections are all held at the gate.

    It keeps at most 100 connections to participants per process: with 100
    ``charge`` calls held, every other saga waits in the middle of a step too
    (for a connection), and none can finish before the gate opens.
    """
    deadline = time.monotonic() + timeout_s
    while len(participant.waiting) < min(SAGAS, 100):
        assert time.monotonic() < deadline, f"only {len(participant.waiting)} calls held"
        await asyncio.sleep(0.1)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster() as started:
        with psycopg.connect(
            f"host=127.0.0.1 port={started.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE saga")
        migrate.upgrade(started.url("saga"))
        yield started


async def _start_all(api: httpx.AsyncClient) -> list[str]:
    async def one(i: int) -> str:
        body = {"definition": "outage", "input": {"n": i}}
        for _ in range(20):
            # A busy API may answer 503: retrying with the same key is safe.
            response = await api.post("/v1/sagas", json=body, headers={"Idempotency-Key": f"o-{i}"})
            if response.status_code != 503:
                break
            await asyncio.sleep(float(response.headers["retry-after"]))
        assert response.status_code in (200, 201), response.text
        saga_id: str = response.json()["id"]
        return saga_id

    ids: list[str] = []
    for first in range(0, SAGAS, 40):
        ids += await asyncio.gather(*(one(i) for i in range(first, min(first + 40, SAGAS))))
    return ids


async def _probe_while_down(api: httpx.AsyncClient, saga_id: str, until: float) -> list[float]:
    """Ask the API while the database is down; each answer must be a quick 503."""
    latencies: list[float] = []
    requests: list[tuple[str, str, Any]] = [
        ("GET", f"/v1/sagas/{saga_id}", None),
        ("GET", "/v1/sagas?limit=10", None),
        ("POST", "/v1/sagas", {"definition": "outage", "input": {"n": -1}}),
        ("POST", f"/v1/sagas/{saga_id}/cancel", None),
    ]
    i = 0
    while time.monotonic() < until:
        method, path, body = requests[i % len(requests)]
        i += 1
        began = time.perf_counter()
        response = await api.request(method, path, json=body)
        latencies.append(time.perf_counter() - began)
        assert_error(response, 503, "unavailable")
        health = await api.get("/healthz")
        assert health.status_code == 200
        await asyncio.sleep(0.2)
    return latencies


async def _wait_all_final(api: httpx.AsyncClient, ids: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = set(ids)
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} sagas not final"
        page = await api.get("/v1/sagas", params={"status": "completed", "limit": 500})
        if page.status_code == 200:
            pending -= {s["id"] for s in page.json()["items"]}
        await asyncio.sleep(0.5)


async def test_database_down_for_ten_seconds_under_200_sagas(
    cluster: Cluster, gated: GatedParticipant, gated_url: str
) -> None:
    participant = gated
    participant.delay.update({"reserve": 0.2, "ship": 0.2})
    settings = fast_settings(
        cluster.url("saga"),
        {"p": [gated_url]},
        enable_faults=False,
        database_pool_size=20,
        request_timeout_s=2.0,
        callback_secret="outage-test-" + "k" * 20,
    )
    async with running_orchestrator(settings) as api:
        await register(
            api,
            "outage",
            [
                step("reserve", retry=RETRY, timeout_ms=5000),
                # Long enough to wait at the gate until the database is down.
                step("charge", retry=RETRY, timeout_ms=120_000),
                {
                    "name": "ship",
                    "participant": "p",
                    "kind": "pivot",
                    "action": {"path": "/do/ship"},
                    "retry": RETRY,
                    "timeout_ms": 5000,
                },
            ],
        )
        ids = await _start_all(api)
        await _calls_held(participant, timeout_s=60)
        listed = await api.get("/v1/sagas", params={"status": "running", "limit": 500})
        running_at_stop = len(listed.json()["items"])
        calls_before = len(participant.requests)
        held_at_stop = len(participant.waiting)

        down_at = time.monotonic()
        await asyncio.to_thread(cluster.stop, "fast")
        # The participant answers every held call while the database is down:
        # the outcomes exist only in the workers' memory until it returns.
        latencies = await _probe_while_down(api, ids[0], time.monotonic() + 1.0)
        participant.gate.set()
        latencies += await _probe_while_down(api, ids[0], down_at + OUTAGE_S)
        await asyncio.to_thread(cluster.start)
        back_at = time.monotonic()

        await _wait_all_final(api, ids, timeout_s=120)
        recovered_s = time.monotonic() - back_at

        # Exactly once, from the orchestrator's history...
        completions = Counter[str]()
        for saga_id in ids:
            saga = (await api.get(f"/v1/sagas/{saga_id}")).json()
            assert saga["status"] == "completed", saga
            assert [s["status"] for s in saga["steps"]] == ["succeeded"] * 3
            events = (await api.get(f"/v1/sagas/{saga_id}/events")).json()["items"]
            completions[saga_id] = sum(
                1 for e in events if e["kind"] == "transition" and e["detail"]["to"] == "completed"
            )
        assert set(completions.values()) == {1}
    # ...and from the participant's: one effect per step, nothing compensated.
    keys = {f"{s}:{name}:action" for s in ids for name in STEPS}
    assert set(participant.applied) == keys
    assert set(participant.applied.values()) == {1}
    assert not participant.compensated
    assert not participant.tombstones
    sent = Counter(r["key"] for r in participant.requests)
    resent = sum(n - 1 for n in sent.values())
    print(
        f"\nDB outage: {SAGAS} sagas, {running_at_stop} running at the stop, "
        f"{held_at_stop} of them held in a participant call "
        f"({calls_before} calls made before it), "
        f"{len(latencies)} API probes while down: 503 in "
        f"median {statistics.median(latencies) * 1000:.0f} ms, "
        f"p90 {statistics.quantiles(latencies, n=10)[-1] * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms; all completed {recovered_s:.1f} s after restart; "
        f"{sum(completions.values())} completions (0 duplicated); "
        f"{resent} calls re-sent with the same key, {len(keys)} effects applied once each"
    )
    # Quick: far below the request deadline (2 s), i.e. answered, not timed out.
    assert statistics.median(latencies) < 0.25
    assert max(latencies) < 1.5
    assert len(latencies) >= 20
    assert running_at_stop == SAGAS  # the outage hit every saga in the middle of its work
    assert len(participant.waiting) == SAGAS


async def test_a_process_started_while_the_database_is_down_comes_up_with_it(
    cluster: Cluster, gated: GatedParticipant, gated_url: str
) -> None:
    gated.gate.set()
    settings = fast_settings(
        cluster.url("saga"),
        {"p": [gated_url]},
        enable_faults=False,
        startup_wait_s=60.0,
        callback_secret=None,  # read from the database: the start must wait for it
    )
    await asyncio.to_thread(cluster.stop, "fast")

    async def start_database_later() -> None:
        await asyncio.sleep(3.0)
        await asyncio.to_thread(cluster.start)

    restart = asyncio.create_task(start_database_later())
    began = time.monotonic()
    async with running_orchestrator(settings) as api:
        waited = time.monotonic() - began
        await restart
        assert waited >= 3.0, "the process came up before its database"
        await register(api, "after", [step("reserve")])
        response = await api.post("/v1/sagas", json={"definition": "after"})
        assert response.status_code == 201, response.text
        await _wait_all_final(api, [response.json()["id"]], timeout_s=30)
