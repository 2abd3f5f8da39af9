"""Idempotent actions over HTTP: one effect per key, the first answer replayed."""

from __future__ import annotations

import asyncio

import httpx

from tests.participants.helpers import key, ledger, metric


async def balance(payments: httpx.AsyncClient, account: str) -> int:
    return int((await payments.get(f"/accounts/{account}")).json()["balance"])


async def charge_movements(payments: httpx.AsyncClient, account: str) -> int:
    rows = (await payments.get("/movements", params={"account": account})).json()
    return sum(1 for row in rows if row["kind"] == "charge")


async def test_a_repeated_key_replays_the_first_answer_and_applies_once(
    payments: httpx.AsyncClient,
) -> None:
    headers = key("s1", "charge")
    first = await payments.post(
        "/charges", json={"account": "alice", "amount": 30}, headers=headers
    )
    # Same body, keys in another order: the same request.
    again = await payments.post(
        "/charges", json={"amount": 30, "account": "alice"}, headers=headers
    )

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await balance(payments, "alice") == 970
    assert await charge_movements(payments, "alice") == 1
    assert await ledger(payments, "s1") == {"s1:charge:action": "applied"}
    assert await metric(payments, "participant_idempotent_replays_total") == 1


async def test_the_same_key_with_another_body_is_refused(payments: httpx.AsyncClient) -> None:
    headers = key("s1", "charge")
    await payments.post("/charges", json={"account": "alice", "amount": 30}, headers=headers)
    other = await payments.post(
        "/charges", json={"account": "alice", "amount": 31}, headers=headers
    )

    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert await balance(payments, "alice") == 970


async def test_a_rejection_is_stored_and_replayed_even_when_it_would_now_succeed(
    payments: httpx.AsyncClient,
) -> None:
    carol = {"account": "carol", "amount": 60}
    assert (
        await payments.post("/charges", json=carol, headers=key("s1", "pay"))
    ).status_code == 201
    short = {"account": "carol", "amount": 50}
    refused = await payments.post("/charges", json=short, headers=key("s2", "pay"))
    assert refused.status_code == 409
    assert refused.json()["error"] == {
        "code": "insufficient_funds",
        "message": "account 'carol' holds 40, 50 needed",
        "balance": 40,
        "amount": 50,
    }
    # The refund makes the money available again; the late duplicate still hears "no".
    refund = await payments.post(
        "/charges/refund", json={}, headers=key("s1", "pay", "compensation")
    )
    assert refund.status_code == 200
    late = await payments.post("/charges", json=short, headers=key("s2", "pay"))

    assert late.status_code == 409
    assert late.json() == refused.json()
    assert late.headers["Idempotent-Replayed"] == "true"
    assert await balance(payments, "carol") == 100
    assert (await ledger(payments, "s2")) == {"s2:pay:action": "rejected"}


async def test_concurrent_duplicates_apply_once(payments: httpx.AsyncClient) -> None:
    body = {"account": "bob", "amount": 7}
    answers = await asyncio.gather(
        *(payments.post("/charges", json=body, headers=key("dup", "charge")) for _ in range(20))
    )

    assert {answer.status_code for answer in answers} == {201}
    assert len({answer.json()["charge_id"] for answer in answers}) == 1
    assert sum(1 for a in answers if a.headers.get("Idempotent-Replayed") == "true") == 19
    assert await balance(payments, "bob") == 493
    assert await charge_movements(payments, "bob") == 1


async def test_the_key_must_be_present_well_formed_and_of_the_right_phase(
    payments: httpx.AsyncClient,
) -> None:
    body = {"account": "alice", "amount": 1}
    cases = {
        "missing_idempotency_key": {},
        "invalid_idempotency_key": {"Idempotency-Key": "no-colons"},
        "wrong_key_phase": {"Idempotency-Key": "s1:charge:compensation"},
    }
    for code, headers in cases.items():
        answer = await payments.post("/charges", json=body, headers=headers)
        assert answer.status_code == 400, code
        assert answer.json()["error"]["code"] == code
    refund = await payments.post("/charges/refund", json={}, headers=key("s1", "charge"))
    assert refund.json()["error"]["code"] == "wrong_key_phase"
    assert await balance(payments, "alice") == 1000


async def test_step_names_may_contain_colons(payments: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "s9:billing:charge:action"}
    answer = await payments.post("/charges", json={"account": "bob", "amount": 1}, headers=headers)

    assert answer.status_code == 201
    row = (await payments.get("/_ledger", params={"saga_id": "s9"})).json()[0]
    assert (row["saga_id"], row["step"], row["phase"]) == ("s9", "billing:charge", "action")


async def test_invalid_bodies_answer_422_naming_the_field(payments: httpx.AsyncClient) -> None:
    answer = await payments.post(
        "/charges", json={"account": "alice", "amount": -5}, headers=key("s1", "charge")
    )

    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert error["fields"][0]["field"] == "body.amount"
    assert "body.amount" in error["message"]
    assert await ledger(payments) == {}  # a malformed call claims no key
