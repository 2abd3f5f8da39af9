"""Concurrent sagas on one account: optimistic updates lose no money and no update."""

from __future__ import annotations

import asyncio

import httpx

from tests.participants.helpers import call_until_answered, key, ledger, metric

AMOUNT = 25  # alice's 1,000 pays for exactly 40 charges


async def test_100_concurrent_charges_exactly_40_succeed_and_the_balance_never_goes_negative(
    payments: httpx.AsyncClient, backend: str
) -> None:
    body = {"account": "alice", "amount": AMOUNT}
    answers = await asyncio.gather(
        *(
            call_until_answered(payments, "/charges", body, key(f"c{i}", "charge"))
            for i in range(100)
        )
    )

    codes = [answer.status_code for answer in answers]
    assert codes.count(201) == 40
    assert codes.count(409) == 60
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {
        "insufficient_funds"
    }
    # Audit from the movements ledger: every step of the balance, in order.
    movements = (await payments.get("/movements", params={"account": "alice"})).json()
    assert [m["kind"] for m in movements] == ["opening"] + ["charge"] * 40
    running = 0
    for movement in movements:
        running += movement["amount"]
        assert movement["balance_after"] == running >= 0
    assert running == 0
    assert (await payments.get("/accounts/alice")).json()["balance"] == 0
    assert (await payments.get("/audit")).json()["consistent"]
    # None lost: every key has its outcome recorded.
    statuses = list((await ledger(payments)).values())
    assert (statuses.count("applied"), statuses.count("rejected")) == (40, 60)

    conflicts = await metric(payments, "participant_version_conflicts_total", table="accounts")
    print(
        f"\n[{backend}] 100 concurrent charges: 40 applied, 60 refused, "
        f"{conflicts:.0f} version conflicts retried"
    )
