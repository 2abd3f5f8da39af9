"""Read endpoints of the shipping service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel

from participants.kit import DatabaseDep, Rejected
from participants.shipping.schema import shipments

router = APIRouter(tags=["shipping"])


class Shipment(BaseModel):
    """A shipment: ``created``, or ``cancelled`` by a compensation."""

    id: str
    order_id: str
    sku: str
    qty: int
    address: str | None
    reservation_id: str | None
    status: str
    tracking_number: str
    saga_id: str
    version: int
    created_at: datetime
    updated_at: datetime


@router.get("/shipments")
async def list_shipments(
    db: DatabaseDep, order_id: Annotated[str | None, Query()] = None
) -> list[Shipment]:
    """Shipments, oldest first, optionally of one order."""
    query = sa.select(shipments).order_by(shipments.c.created_at, shipments.c.id)
    if order_id is not None:
        query = query.where(shipments.c.order_id == order_id)
    async with db.read() as conn:
        rows = (await conn.execute(query)).mappings()
        return [Shipment.model_validate(dict(row)) for row in rows]


@router.get("/shipments/{shipment_id}")
async def get_shipment(shipment_id: str, db: DatabaseDep) -> Shipment:
    """One shipment."""
    async with db.read() as conn:
        query = sa.select(shipments).where(shipments.c.id == shipment_id)
        row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise Rejected("shipment_not_found", f"no shipment {shipment_id!r}", status=404)
    return Shipment.model_validate(dict(row))
