"""The shipping service: shipments created by sagas, cancelled by compensations."""

from __future__ import annotations

import httpx

from tests.participants.helpers import key

SHIPMENT = {"order_id": "o-1", "sku": "A1", "qty": 2, "reservation_id": "r-1"}


async def test_create_then_cancel_a_shipment(shipping: httpx.AsyncClient) -> None:
    created = await shipping.post("/shipments", json=SHIPMENT, headers=key("s1", "ship"))
    assert created.status_code == 201
    body = created.json()
    assert body["status"] == "created"
    assert body["order_id"] == "o-1"
    assert body["tracking_number"].startswith("TRK")

    cancelled = await shipping.post(
        "/shipments/cancel", json={}, headers=key("s1", "ship", "compensation")
    )
    assert cancelled.json() == {"shipment_id": body["shipment_id"], "status": "cancelled"}
    listed = (await shipping.get("/shipments", params={"order_id": "o-1"})).json()
    assert [(s["id"], s["status"], s["saga_id"]) for s in listed] == [
        (body["shipment_id"], "cancelled", "s1")
    ]
    assert (await shipping.get("/shipments/none")).status_code == 404
