"""Read endpoints of the inventory service."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel

from participants.inventory.schema import items, reservations
from participants.kit import DatabaseDep, Rejected

router = APIRouter(tags=["inventory"])


class Item(BaseModel):
    """A stock item; ``available + reserved + committed`` never changes."""

    sku: str
    name: str
    available: int
    reserved: int
    committed: int
    version: int
    updated_at: datetime


class Reservation(BaseModel):
    """Units held for a saga: ``reserved``, then ``released`` or ``committed``."""

    id: str
    sku: str
    qty: int
    status: str
    order_id: str | None
    saga_id: str
    version: int
    created_at: datetime
    updated_at: datetime


@router.get("/items")
async def list_items(db: DatabaseDep) -> list[Item]:
    """Every item."""
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(items).order_by(items.c.sku))).mappings()
        return [Item.model_validate(dict(row)) for row in rows]


@router.get("/items/{sku}")
async def get_item(sku: str, db: DatabaseDep) -> Item:
    """One item."""
    async with db.read() as conn:
        row = (await conn.execute(sa.select(items).where(items.c.sku == sku))).mappings().first()
    if row is None:
        raise Rejected("item_not_found", f"no item {sku!r}", status=404)
    return Item.model_validate(dict(row))


@router.get("/reservations/{reservation_id}")
async def get_reservation(reservation_id: str, db: DatabaseDep) -> Reservation:
    """One reservation."""
    query = sa.select(reservations).where(reservations.c.id == reservation_id)
    async with db.read() as conn:
        row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise Rejected("reservation_not_found", f"no reservation {reservation_id!r}", status=404)
    return Reservation.model_validate(dict(row))
