"""The orders service: pending orders are semantically locked to their saga."""

from __future__ import annotations

import httpx

from tests.participants.helpers import key

ORDER = {"account": "alice", "sku": "A1", "qty": 2, "amount": 30}


async def create(orders: httpx.AsyncClient, saga: str) -> str:
    answer = await orders.post("/orders", json=ORDER, headers=key(saga, "create_order"))
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"order_id": answer.json()["order_id"], "status": "pending", **ORDER}
    return str(answer.json()["order_id"])


async def test_a_pending_order_belongs_to_its_saga(orders: httpx.AsyncClient) -> None:
    order_id = await create(orders, "s1")

    patch = await orders.patch(f"/orders/{order_id}", json={"note": "gift wrap"})
    assert patch.status_code == 409
    assert patch.json()["error"]["code"] == "order_locked"
    assert patch.json()["error"]["saga_id"] == "s1"
    stranger = await orders.post(
        "/orders/approve", json={"order_id": order_id}, headers=key("s2", "approve_order")
    )
    assert stranger.status_code == 409
    assert stranger.json()["error"]["code"] == "order_locked"

    approve = {"order_id": order_id, "shipment_id": "ship-1"}
    approved = await orders.post(
        "/orders/approve", json=approve, headers=key("s1", "approve_order")
    )
    assert approved.status_code == 200
    assert approved.json() == {"order_id": order_id, "status": "approved"}

    changed = await orders.patch(f"/orders/{order_id}", json={"note": "gift wrap"})
    assert changed.status_code == 200
    order = (await orders.get(f"/orders/{order_id}")).json()
    assert (order["status"], order["note"], order["shipment_id"]) == (
        "approved",
        "gift wrap",
        "ship-1",
    )
    assert order["version"] == 3


async def test_the_compensation_rejects_the_order(orders: httpx.AsyncClient) -> None:
    order_id = await create(orders, "s1")

    rejected = await orders.post(
        "/orders/reject", json={"saga_id": "s1"}, headers=key("s1", "create_order", "compensation")
    )
    assert rejected.status_code == 200
    assert rejected.json() == {"order_id": order_id, "status": "rejected"}

    late = await orders.post(
        "/orders/approve", json={"order_id": order_id}, headers=key("s1", "approve_order")
    )
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "order_rejected"
    listed = (await orders.get("/orders", params={"status": "rejected"})).json()
    assert [o["id"] for o in listed] == [order_id]


async def test_unknown_orders_are_404(orders: httpx.AsyncClient) -> None:
    assert (await orders.get("/orders/nope")).status_code == 404
    missing = await orders.post(
        "/orders/approve", json={"order_id": "nope"}, headers=key("s1", "approve_order")
    )
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "order_not_found")
