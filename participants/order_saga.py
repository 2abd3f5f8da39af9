"""The ``order`` saga shipped with the examples, in the orchestrator's JSON definition format.

Input (``POST /v1/sagas`` with ``{"definition": "order", "input": {...}}``)::

    {"account": "alice",  # payments account to charge (demo: alice, bob, carol)
     "sku": "A1",         # inventory item (demo: A1, B2, C3)
     "qty": 2,            # units, > 0
     "amount": 30}        # price in minor units, > 0

The order id is not an input: the orders service creates it in the first step
(one order per saga, thanks to the idempotency key) and later steps read it
from ``$.results.create_order.order_id``.

Steps: ``create_order`` (orders, compensated by rejecting the order) →
``reserve_stock`` (inventory, compensated by releasing the units) → ``charge``
(payments, the pivot: once the money is taken the saga only goes forward) →
``create_shipment`` (shipping, retriable) → ``commit_stock`` (inventory,
retriable: the reserved units leave the shelf) → ``approve_order`` (orders,
retriable). A short account (409 ``insufficient_funds``) or short stock (409
``out_of_stock``) rejects the saga before the pivot, which then compensates.
Compensation calls get the orchestrator's default body; the kit finds what to
undo from the idempotency key, so no compensation body is configured.
"""

from __future__ import annotations

from typing import Any

_FORWARD = {"max_attempts": 5, "initial_backoff_ms": 50, "max_backoff_ms": 2000, "multiplier": 2.0}
# Steps after the pivot must eventually succeed: retry long.
_UNTIL_DONE = {
    "max_attempts": 30,
    "initial_backoff_ms": 100,
    "max_backoff_ms": 5000,
    "multiplier": 2.0,
}

ORDER_ID = "$.results.create_order.order_id"

ORDER_DEFINITION: dict[str, Any] = {
    "name": "order",
    "deadline_s": 300,
    "steps": [
        {
            "name": "create_order",
            "participant": "orders",
            "kind": "compensatable",
            "action": {
                "path": "/orders",
                "body": {
                    "account": "$.input.account",
                    "sku": "$.input.sku",
                    "qty": "$.input.qty",
                    "amount": "$.input.amount",
                },
            },
            "compensation": {"path": "/orders/reject"},
            "retry": {**_FORWARD},
            "timeout_ms": 2000,
        },
        {
            "name": "reserve_stock",
            "participant": "inventory",
            "kind": "compensatable",
            "action": {
                "path": "/reservations",
                "body": {"sku": "$.input.sku", "qty": "$.input.qty", "order_id": ORDER_ID},
            },
            "compensation": {"path": "/reservations/cancel"},
            "retry": {**_FORWARD},
            "timeout_ms": 2000,
        },
        {
            "name": "charge",
            "participant": "payments",
            "kind": "pivot",
            "action": {
                "path": "/charges",
                "body": {
                    "account": "$.input.account",
                    "amount": "$.input.amount",
                    "order_id": ORDER_ID,
                },
            },
            "retry": {**_FORWARD},
            "timeout_ms": 2000,
        },
        {
            "name": "create_shipment",
            "participant": "shipping",
            "kind": "retriable",
            "action": {
                "path": "/shipments",
                "body": {
                    "order_id": ORDER_ID,
                    "sku": "$.input.sku",
                    "qty": "$.input.qty",
                    "reservation_id": "$.results.reserve_stock.reservation_id",
                },
            },
            "retry": {**_UNTIL_DONE},
            "timeout_ms": 2000,
        },
        {
            "name": "commit_stock",
            "participant": "inventory",
            "kind": "retriable",
            "action": {
                "path": "/reservations/commit",
                "body": {"reservation_id": "$.results.reserve_stock.reservation_id"},
            },
            "retry": {**_UNTIL_DONE},
            "timeout_ms": 2000,
        },
        {
            "name": "approve_order",
            "participant": "orders",
            "kind": "retriable",
            "action": {
                "path": "/orders/approve",
                "body": {
                    "order_id": ORDER_ID,
                    "shipment_id": "$.results.create_shipment.shipment_id",
                },
            },
            "retry": {**_UNTIL_DONE},
            "timeout_ms": 2000,
        },
    ],
}
"""The ``order`` definition, ready for ``POST /v1/definitions``."""

EXAMPLE_INPUT: dict[str, Any] = {"account": "alice", "sku": "A1", "qty": 2, "amount": 30}
"""An input that completes against the demo data."""
