"""The orders service: a saga creates an order ``pending``, then approves or rejects it.

Endpoints for sagas: ``POST /orders`` (action), ``POST /orders/reject`` (its
compensation) and ``POST /orders/approve`` (the saga's last, retriable step).
A pending order is semantically locked: only the saga that created it may
approve it, and ``PATCH /orders/{id}`` (a customer's change, in
:mod:`participants.orders.queries`) is refused with 409 until the saga is done.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from participants.kit import (
    ActionRecord,
    Change,
    Effect,
    EffectRouter,
    ParticipantSettings,
    Rejected,
    create_participant_app,
    utcnow,
)
from participants.orders.demo import DEMO
from participants.orders.queries import router as queries
from participants.orders.schema import orders

SERVICE = "orders"

effects = EffectRouter()


class CreateOrder(BaseModel):
    """``POST /orders``: ``qty`` units of ``sku`` for ``amount`` (minor units) from ``account``."""

    account: str = Field(min_length=1, max_length=64)
    sku: str = Field(min_length=1, max_length=64)
    qty: int = Field(gt=0)
    amount: int = Field(gt=0)


class ApproveOrder(BaseModel):
    """``POST /orders/approve``: the saga went through; ``shipment_id`` is recorded."""

    order_id: str = Field(min_length=1, max_length=36)
    shipment_id: str | None = Field(default=None, max_length=36)


@effects.action("/orders", summary="Create a pending order")
async def create_order(effect: Effect, body: CreateOrder) -> dict[str, Any]:
    """Create the order ``pending``, locked to the calling saga."""
    order_id = str(uuid.uuid4())
    now = utcnow()
    row = {
        "id": order_id,
        "saga_id": effect.saga_id,
        "status": "pending",
        "version": 1,
        "created_at": now,
        "updated_at": now,
        **body.model_dump(),
    }
    await effect.conn.execute(orders.insert().values(row))
    return {"order_id": order_id, "status": "pending", **body.model_dump()}


@effects.compensation("/orders/reject", undoes="/orders", summary="Reject an order")
async def reject_order(effect: Effect, action: ActionRecord) -> dict[str, Any]:
    """Reject the pending order the saga created (its compensation)."""
    order_id = action.response["order_id"]
    order = await effect.update_versioned(orders, order_id, _finish(effect, "rejected"))
    return {"order_id": order_id, "status": order["status"]}


@effects.action("/orders/approve", status_code=200, summary="Approve an order")
async def approve_order(effect: Effect, body: ApproveOrder) -> dict[str, Any]:
    """Approve the order; only its own saga may (409 ``order_locked`` otherwise)."""
    extra = {"shipment_id": body.shipment_id} if body.shipment_id else {}
    finish = _finish(effect, "approved", **extra)
    order = await effect.update_versioned(orders, body.order_id, finish)
    return {"order_id": body.order_id, "status": order["status"]}


def _finish(effect: Effect, status: str, **extra: Any) -> Change:
    def change(order: Mapping[str, Any]) -> dict[str, Any] | None:
        if order["saga_id"] != effect.saga_id:
            raise Rejected(
                "order_locked",
                f"order {order['id']} belongs to saga {order['saga_id']}",
                saga_id=order["saga_id"],
            )
        if order["status"] == status:
            return None  # already there: nothing to write
        if order["status"] != "pending":
            raise Rejected(f"order_{order['status']}", f"order {order['id']} is {order['status']}")
        return {"status": status, "updated_at": utcnow(), **extra}

    return change


def create_app(settings: ParticipantSettings | None = None) -> FastAPI:
    """The orders app."""
    return create_participant_app(
        SERVICE, settings, effects=effects, routers=[queries], demo=DEMO, title="orders"
    )
