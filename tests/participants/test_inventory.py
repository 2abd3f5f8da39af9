"""The inventory service: reservations, release, commit; stock is conserved."""

from __future__ import annotations

import httpx

from tests.participants.helpers import key


async def item(inventory: httpx.AsyncClient, sku: str) -> dict[str, int]:
    row = (await inventory.get(f"/items/{sku}")).json()
    return {k: row[k] for k in ("available", "reserved", "committed")}


async def test_reserve_then_release(inventory: httpx.AsyncClient) -> None:
    reserved = await inventory.post(
        "/reservations", json={"sku": "B2", "qty": 5}, headers=key("s1", "reserve_stock")
    )
    assert reserved.status_code == 201
    body = reserved.json()
    assert body == {
        "reservation_id": body["reservation_id"],
        "sku": "B2",
        "qty": 5,
        "available": 15,
    }
    assert await item(inventory, "B2") == {"available": 15, "reserved": 5, "committed": 0}

    released = await inventory.post(
        "/reservations/cancel", json={}, headers=key("s1", "reserve_stock", "compensation")
    )
    assert released.json() == {
        "reservation_id": body["reservation_id"],
        "released": 5,
        "available": 20,
    }
    assert await item(inventory, "B2") == {"available": 20, "reserved": 0, "committed": 0}
    reservation = (await inventory.get(f"/reservations/{body['reservation_id']}")).json()
    assert reservation["status"] == "released"


async def test_short_stock_is_refused(inventory: httpx.AsyncClient) -> None:
    short = await inventory.post(
        "/reservations", json={"sku": "C3", "qty": 4}, headers=key("s1", "reserve_stock")
    )
    assert short.status_code == 409
    assert short.json()["error"]["code"] == "out_of_stock"
    assert short.json()["error"]["available"] == 3
    assert await item(inventory, "C3") == {"available": 3, "reserved": 0, "committed": 0}


async def test_committed_stock_cannot_be_released(inventory: httpx.AsyncClient) -> None:
    reserved = await inventory.post(
        "/reservations", json={"sku": "A1", "qty": 10}, headers=key("s1", "reserve_stock")
    )
    reservation_id = reserved.json()["reservation_id"]
    committed = await inventory.post(
        "/reservations/commit", json={"reservation_id": reservation_id}, headers=key("s1", "commit")
    )
    assert committed.status_code == 200
    assert committed.json() == {"reservation_id": reservation_id, "committed": 10, "sku": "A1"}

    release = await inventory.post(
        "/reservations/cancel", json={}, headers=key("s1", "reserve_stock", "compensation")
    )
    assert release.status_code == 409
    assert release.json()["error"]["code"] == "reservation_committed"
    assert await item(inventory, "A1") == {"available": 90, "reserved": 0, "committed": 10}
    ledger = {row["key"]: row["status"] for row in (await inventory.get("/_ledger")).json()}
    # Not undone, and the refusal is not kept: the compensation may be retried.
    assert ledger == {"s1:reserve_stock:action": "applied", "s1:commit:action": "applied"}
