"""Compensations: undo what was applied, tombstone what never arrived, replay on repeat."""

from __future__ import annotations

import asyncio

import httpx

from tests.participants.helpers import key, ledger, metric

CHARGE = {"account": "alice", "amount": 100}


async def test_a_compensation_before_its_action_leaves_a_tombstone_that_refuses_it(
    payments: httpx.AsyncClient,
) -> None:
    undo = await payments.post("/charges/refund", json={}, headers=key("s1", "pay", "compensation"))
    assert undo.status_code == 200
    assert undo.json() == {"undone": False, "action_status": "absent"}

    late = await payments.post("/charges", json=CHARGE, headers=key("s1", "pay"))
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "compensated_before_action"
    again = await payments.post("/charges", json=CHARGE, headers=key("s1", "pay"))
    assert again.status_code == 409

    assert (await payments.get("/accounts/alice")).json()["balance"] == 1000
    assert (await payments.get("/movements", params={"saga_id": "s1"})).json() == []
    assert await ledger(payments, "s1") == {
        "s1:pay:action": "tombstone",
        "s1:pay:compensation": "applied",
    }
    assert await metric(payments, "participant_tombstone_refusals_total") == 2


async def test_a_compensation_undoes_an_applied_action_once(payments: httpx.AsyncClient) -> None:
    charged = await payments.post("/charges", json=CHARGE, headers=key("s1", "pay"))
    charge_id = charged.json()["charge_id"]

    undo = await payments.post("/charges/refund", json={}, headers=key("s1", "pay", "compensation"))
    again = await payments.post(
        "/charges/refund", json={}, headers=key("s1", "pay", "compensation")
    )

    assert undo.status_code == again.status_code == 200
    assert undo.json() == {
        "charge_id": charge_id,
        "refunded": 100,
        "account": "alice",
        "balance": 1000,
    }
    assert again.json() == undo.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    kinds = [m["kind"] for m in (await payments.get("/movements", params={"saga_id": "s1"})).json()]
    assert kinds == ["charge", "refund"]
    assert (await payments.get(f"/charges/{charge_id}")).json()["status"] == "refunded"
    assert await ledger(payments, "s1") == {
        "s1:pay:action": "compensated",
        "s1:pay:compensation": "applied",
    }
    # A retry whose default body grew (more results by now) is the same compensation.
    grown = {"saga_id": "s1", "input": {}, "results": {"other_step": {"id": 1}}}
    later = await payments.post(
        "/charges/refund", json=grown, headers=key("s1", "pay", "compensation")
    )
    assert (later.status_code, later.json()) == (200, undo.json())
    # The action's own duplicate still gets its first answer: it did happen.
    replay = await payments.post("/charges", json=CHARGE, headers=key("s1", "pay"))
    assert replay.status_code == 201
    assert replay.json() == charged.json()


async def test_compensating_a_rejected_action_has_nothing_to_undo(
    payments: httpx.AsyncClient,
) -> None:
    too_much = {"account": "carol", "amount": 1000}
    assert (
        await payments.post("/charges", json=too_much, headers=key("s1", "pay"))
    ).status_code == 409

    undo = await payments.post("/charges/refund", json={}, headers=key("s1", "pay", "compensation"))

    assert undo.status_code == 200
    assert undo.json() == {"undone": False, "action_status": "rejected"}
    assert (await payments.get("/accounts/carol")).json()["balance"] == 100
    assert await ledger(payments, "s1") == {
        "s1:pay:action": "rejected",
        "s1:pay:compensation": "applied",
    }


async def test_racing_actions_and_compensations_never_leave_an_effect_standing(
    payments: httpx.AsyncClient,
) -> None:
    """Each saga's action and compensation race; whoever wins, nothing stays charged."""
    sagas = [f"race{i}" for i in range(15)]
    body = {"account": "alice", "amount": 10}

    async def race(saga: str) -> tuple[int, int]:
        action, undo = await asyncio.gather(
            payments.post("/charges", json=body, headers=key(saga, "pay")),
            payments.post("/charges/refund", json={}, headers=key(saga, "pay", "compensation")),
        )
        return action.status_code, undo.status_code

    outcomes = await asyncio.gather(*(race(saga) for saga in sagas))

    assert all(undo == 200 and action in (201, 409) for action, undo in outcomes)
    statuses = await ledger(payments)
    for saga, (action, _) in zip(sagas, outcomes, strict=True):
        expected = "compensated" if action == 201 else "tombstone"
        assert statuses[f"{saga}:pay:action"] == expected
    audit = (await payments.get("/audit")).json()
    assert audit["consistent"]
    assert (await payments.get("/accounts/alice")).json()["balance"] == 1000
