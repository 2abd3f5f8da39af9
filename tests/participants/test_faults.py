"""In-service faults over HTTP: the rule board and each mode's effect on exactly-once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.participants.conftest import MakeDatabase, start
from tests.participants.helpers import key, ledger, metric
from tests.support.servers import serve_app

BODY = {"account": "alice", "amount": 10}


async def add_fault(payments: httpx.AsyncClient, **rule: Any) -> dict[str, Any]:
    answer = await payments.post("/_faults", json=rule)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def balance(payments: httpx.AsyncClient) -> int:
    return int((await payments.get("/accounts/alice")).json()["balance"])


async def test_fault_endpoints_answer_404_unless_enabled(make_database: MakeDatabase) -> None:
    _, app = await start("payments", make_database("payments"), faults=False)
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as client:
        for method, path in [("GET", "/_faults"), ("POST", "/_faults"), ("DELETE", "/_faults")]:
            answer = await client.request(method, path, json={"mode": "delay"})
            assert answer.status_code == 404
            assert answer.json()["error"]["code"] == "not_found"
        assert (await client.post("/_reset")).status_code == 404


async def test_rules_are_added_listed_and_removed(payments: httpx.AsyncClient) -> None:
    first = await add_fault(payments, endpoint="/charges", mode="error_after_commit", count=2)
    second = await add_fault(payments, mode="delay", delay_ms=1, phase="compensation")
    assert first["id"] != second["id"]
    assert first["status"] is None
    assert first["fired"] == 0
    assert first["probability"] == 1.0

    listed = (await payments.get("/_faults")).json()
    assert [rule["id"] for rule in listed] == [first["id"], second["id"]]
    assert (await payments.delete(f"/_faults/{first['id']}")).status_code == 204
    assert (await payments.delete(f"/_faults/{first['id']}")).status_code == 404
    assert (await payments.delete("/_faults")).status_code == 204
    assert (await payments.get("/_faults")).json() == []


async def test_invalid_rules_are_refused_naming_the_field(payments: httpx.AsyncClient) -> None:
    answer = await payments.post("/_faults", json={"mode": "explode"})
    assert answer.status_code == 422
    assert answer.json()["error"]["fields"][0]["field"] == "body.mode"
    reject_5xx = await payments.post("/_faults", json={"mode": "reject", "status": 503})
    assert reject_5xx.status_code == 422


async def test_error_after_commit_then_retry_applies_once(payments: httpx.AsyncClient) -> None:
    await add_fault(payments, endpoint="/charges", mode="error_after_commit", count=1)

    lost = await payments.post("/charges", json=BODY, headers=key("s1", "pay"))
    assert lost.status_code == 500
    assert lost.json()["error"]["code"] == "fault_injected"
    assert await balance(payments) == 990  # the effect committed; only the answer was lost

    retry = await payments.post("/charges", json=BODY, headers=key("s1", "pay", attempt=2))
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert await balance(payments) == 990
    assert await ledger(payments) == {"s1:pay:action": "applied"}
    rules = (await payments.get("/_faults")).json()
    assert rules[0]["fired"] == 1
    assert await metric(payments, "participant_faults_fired_total", mode="error_after_commit") == 1


async def test_error_before_commit_leaves_nothing_and_frees_the_key(
    payments: httpx.AsyncClient,
) -> None:
    await add_fault(payments, endpoint="/charges", mode="error_before_commit", status=503, count=1)

    failed = await payments.post("/charges", json=BODY, headers=key("s1", "pay"))
    assert failed.status_code == 503
    assert await balance(payments) == 1000
    assert await ledger(payments) == {}

    retry = await payments.post("/charges", json=BODY, headers=key("s1", "pay", attempt=2))
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers
    assert await balance(payments) == 990


async def test_a_reject_fault_is_stored_like_any_rejection(payments: httpx.AsyncClient) -> None:
    await add_fault(payments, endpoint="/charges", mode="reject", count=1)

    refused = await payments.post("/charges", json=BODY, headers=key("s1", "pay"))
    again = await payments.post("/charges", json=BODY, headers=key("s1", "pay"))

    assert refused.status_code == again.status_code == 409
    assert refused.json()["error"]["code"] == "fault_injected"
    assert await ledger(payments) == {"s1:pay:action": "rejected"}
    assert await balance(payments) == 1000


async def test_a_refused_compensation_is_not_kept_so_it_can_be_retried(
    payments: httpx.AsyncClient,
) -> None:
    await payments.post("/charges", json=BODY, headers=key("s1", "pay"))
    await add_fault(payments, endpoint="/charges/refund", mode="reject", count=1)
    undo = key("s1", "pay", "compensation")

    refused = await payments.post("/charges/refund", json={}, headers=undo)
    assert refused.status_code == 409
    assert await ledger(payments) == {"s1:pay:action": "applied"}

    retried = await payments.post("/charges/refund", json={}, headers=undo)
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried.headers
    assert await balance(payments) == 1000
    assert await ledger(payments) == {
        "s1:pay:action": "compensated",
        "s1:pay:compensation": "applied",
    }


async def test_a_duplicate_of_a_slow_call_waits_for_its_answer(
    payments: httpx.AsyncClient,
) -> None:
    await add_fault(payments, endpoint="/charges", mode="delay", delay_ms=400, count=1)

    started = time.perf_counter()
    slow = asyncio.create_task(payments.post("/charges", json=BODY, headers=key("s1", "pay")))
    await asyncio.sleep(0.1)
    duplicate = await payments.post("/charges", json=BODY, headers=key("s1", "pay", attempt=2))
    first = await slow

    assert time.perf_counter() - started >= 0.4
    assert (first.status_code, duplicate.status_code) == (201, 201)
    assert duplicate.json() == first.json()
    assert duplicate.headers["Idempotent-Replayed"] == "true"
    assert await balance(payments) == 990


async def test_a_duplicate_waiting_past_the_lock_timeout_hears_503(
    make_database: MakeDatabase,
) -> None:
    _, app = await start("payments", make_database("payments"), db_lock_timeout_ms=100)
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as payments:
        await add_fault(payments, endpoint="/charges", mode="delay", delay_ms=600, count=1)
        slow = asyncio.create_task(payments.post("/charges", json=BODY, headers=key("s1", "pay")))
        await asyncio.sleep(0.1)
        busy = await payments.post("/charges", json=BODY, headers=key("s1", "pay", attempt=2))
        assert (await slow).status_code == 201
        retry = await payments.post("/charges", json=BODY, headers=key("s1", "pay", attempt=3))

        assert busy.status_code == 503  # transient: never a 409 for a call still in flight
        assert busy.headers["Retry-After"] == "1"
        assert busy.json()["error"]["code"] == "database_busy"
        assert retry.status_code == 201
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert await balance(payments) == 990


async def test_rules_match_by_endpoint_and_phase(payments: httpx.AsyncClient) -> None:
    await add_fault(payments, mode="error_before_commit", phase="compensation")
    await add_fault(payments, endpoint="/elsewhere", mode="error_before_commit")

    charged = await payments.post("/charges", json=BODY, headers=key("s1", "pay"))
    undo = await payments.post("/charges/refund", json={}, headers=key("s1", "pay", "compensation"))

    assert charged.status_code == 201
    assert undo.status_code == 500
    assert await ledger(payments) == {"s1:pay:action": "applied"}


@pytest.mark.parametrize("seed", [42, 7])
async def test_a_seeded_rule_fires_on_the_same_calls_every_time(
    payments: httpx.AsyncClient, seed: int
) -> None:
    async def pattern(run: str) -> list[int]:
        await payments.delete("/_faults")
        await add_fault(payments, mode="reject", probability=0.5, seed=seed, count=6)
        answers = [
            await payments.post(
                "/charges", json={**BODY, "amount": 1}, headers=key(f"{run}{i}", "p")
            )
            for i in range(20)
        ]
        return [answer.status_code for answer in answers]

    first, second = await pattern("a"), await pattern("b")

    assert first == second
    assert first.count(409) == 6  # count caps the firings
    assert set(first) == {201, 409}


@pytest.mark.postgres
async def test_an_unreachable_database_is_a_503_not_a_500() -> None:
    # Nothing listens on port 1: every connection attempt is refused at once.
    _, app = await start(
        "payments", "postgresql+asyncpg://postgres@127.0.0.1:1/payments", seed=False
    )
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as payments:
        answer = await payments.post("/charges", json=BODY, headers=key("s1", "pay"))
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"
    assert answer.json()["error"]["code"] == "database_unavailable"
