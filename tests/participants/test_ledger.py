"""``GET /_ledger``: one row per key, every status, filterable by saga."""

from __future__ import annotations

from datetime import datetime

import httpx

from tests.participants.helpers import key

CHARGE = {"account": "alice", "amount": 10}


async def test_the_ledger_shows_every_kind_of_key(payments: httpx.AsyncClient) -> None:
    await payments.post("/charges", json=CHARGE, headers=key("applied", "pay"))
    await payments.post("/charges", json=CHARGE, headers=key("undone", "pay"))
    await payments.post("/charges/refund", json={}, headers=key("undone", "pay", "compensation"))
    await payments.post("/charges/refund", json={}, headers=key("tomb", "pay", "compensation"))
    broke = {"account": "carol", "amount": 500}
    await payments.post("/charges", json=broke, headers=key("refused", "pay"))

    rows = (await payments.get("/_ledger")).json()

    assert {row["key"]: row["status"] for row in rows} == {
        "applied:pay:action": "applied",
        "undone:pay:action": "compensated",
        "undone:pay:compensation": "applied",
        "tomb:pay:action": "tombstone",
        "tomb:pay:compensation": "applied",
        "refused:pay:action": "rejected",
    }
    for row in rows:
        assert {"key", "saga_id", "step", "phase", "applied_at", "status"} <= set(row)
        assert row["key"] == f"{row['saga_id']}:{row['step']}:{row['phase']}"
        assert datetime.fromisoformat(row["applied_at"]).tzinfo is not None
    applied_at = [row["applied_at"] for row in rows]
    assert applied_at == sorted(applied_at)


async def test_the_ledger_filters_by_saga(payments: httpx.AsyncClient) -> None:
    await payments.post("/charges", json=CHARGE, headers=key("one", "pay"))
    await payments.post("/charges", json=CHARGE, headers=key("two", "pay"))

    rows = (await payments.get("/_ledger", params={"saga_id": "two"})).json()

    assert [(row["key"], row["endpoint"], row["http_status"]) for row in rows] == [
        ("two:pay:action", "/charges", 201)
    ]
    assert (await payments.get("/_ledger", params={"saga_id": "none"})).json() == []
