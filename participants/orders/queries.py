"""Endpoints of the orders service outside sagas: reads, and a customer's change.

``PATCH /orders/{id}`` shows the semantic lock from the other side: while an
order is ``pending`` its saga owns it, so the change is refused (409
``order_locked``) rather than interleaved with the saga's work.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from participants.kit import KitDep, Rejected, update_versioned, utcnow
from participants.orders.schema import orders

router = APIRouter(tags=["orders"])


class Order(BaseModel):
    """An order; ``pending`` while its saga runs."""

    id: str
    saga_id: str
    account: str
    sku: str
    qty: int
    amount: int
    status: str
    note: str | None
    shipment_id: str | None
    version: int
    created_at: datetime
    updated_at: datetime


class OrderChange(BaseModel):
    """``PATCH /orders/{id}``: what a customer may change on a settled order."""

    note: str = Field(max_length=500)


@router.get("/orders")
async def list_orders(
    kit: KitDep,
    saga_id: Annotated[str | None, Query()] = None,
    status: Annotated[str | None, Query()] = None,
) -> list[Order]:
    """Orders, oldest first, optionally of one saga or in one status."""
    query = sa.select(orders).order_by(orders.c.created_at, orders.c.id)
    if saga_id is not None:
        query = query.where(orders.c.saga_id == saga_id)
    if status is not None:
        query = query.where(orders.c.status == status)
    async with kit.db.read() as conn:
        rows = (await conn.execute(query)).mappings()
        return [Order.model_validate(dict(row)) for row in rows]


@router.get("/orders/{order_id}")
async def get_order(order_id: str, kit: KitDep) -> Order:
    """One order."""
    async with kit.db.read() as conn:
        query = sa.select(orders).where(orders.c.id == order_id)
        row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise Rejected("order_not_found", f"no order {order_id!r}", status=404)
    return Order.model_validate(dict(row))


@router.patch("/orders/{order_id}")
async def change_order(order_id: str, change: OrderChange, kit: KitDep) -> Order:
    """Change a settled order's note; 409 ``order_locked`` while it is pending."""

    def apply(order: Mapping[str, Any]) -> dict[str, Any]:
        if order["status"] == "pending":
            raise Rejected(
                "order_locked",
                f"order {order_id} is pending: saga {order['saga_id']} is working on it",
                saga_id=order["saga_id"],
            )
        return {"note": change.note, "updated_at": utcnow()}

    async with kit.db.transaction() as conn:
        row = await update_versioned(
            conn,
            orders,
            order_id,
            apply,
            max_attempts=kit.settings.optimistic_attempts,
            on_conflict=kit.metrics.conflict_counter(orders.name),
        )
    return Order.model_validate(row)
