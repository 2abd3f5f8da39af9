"""The inventory service: reserve stock for a saga, release it, commit it.

Endpoints for sagas: ``POST /reservations`` (action, 409 ``out_of_stock``),
``POST /reservations/cancel`` (its compensation: release the units) and
``POST /reservations/commit`` (a retriable action: the reserved units leave
the warehouse). Read endpoints are in :mod:`participants.inventory.queries`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from participants.inventory.demo import DEMO
from participants.inventory.queries import router as queries
from participants.inventory.schema import items, reservations
from participants.kit import (
    ActionRecord,
    Effect,
    EffectRouter,
    ParticipantSettings,
    Rejected,
    create_participant_app,
    utcnow,
)

SERVICE = "inventory"

effects = EffectRouter()


class ReserveRequest(BaseModel):
    """``POST /reservations``: hold ``qty`` units of ``sku``."""

    sku: str = Field(min_length=1, max_length=64)
    qty: int = Field(gt=0)
    order_id: str | None = Field(default=None, max_length=64)


class CommitRequest(BaseModel):
    """``POST /reservations/commit``: the reserved units are shipped."""

    reservation_id: str = Field(min_length=1, max_length=36)


@effects.action("/reservations", summary="Reserve stock")
async def reserve(effect: Effect, body: ReserveRequest) -> dict[str, Any]:
    """Move units from available to reserved; 409 ``out_of_stock`` when short."""

    def take(item: Mapping[str, Any]) -> dict[str, Any]:
        if item["available"] < body.qty:
            raise Rejected(
                "out_of_stock",
                f"{item['available']} of {body.sku!r} available, {body.qty} wanted",
                available=item["available"],
                qty=body.qty,
            )
        return {
            "available": item["available"] - body.qty,
            "reserved": item["reserved"] + body.qty,
            "updated_at": utcnow(),
        }

    item = await effect.update_versioned(items, body.sku, take)
    reservation_id = str(uuid.uuid4())
    now = utcnow()
    await effect.conn.execute(
        reservations.insert().values(
            id=reservation_id,
            sku=body.sku,
            qty=body.qty,
            status="reserved",
            order_id=body.order_id,
            saga_id=effect.saga_id,
            version=1,
            created_at=now,
            updated_at=now,
        )
    )
    return {
        "reservation_id": reservation_id,
        "sku": body.sku,
        "qty": body.qty,
        "available": item["available"],
    }


@effects.compensation("/reservations/cancel", undoes="/reservations", summary="Release stock")
async def release(effect: Effect, action: ActionRecord) -> dict[str, Any]:
    """Give a reservation's units back; refused (409) once they were committed."""
    reservation = await _move_reservation(effect, action.response["reservation_id"], "released")
    qty = reservation["qty"]

    def give_back(item: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "available": item["available"] + qty,
            "reserved": item["reserved"] - qty,
            "updated_at": utcnow(),
        }

    item = await effect.update_versioned(items, reservation["sku"], give_back)
    return {"reservation_id": reservation["id"], "released": qty, "available": item["available"]}


@effects.action("/reservations/commit", status_code=200, summary="Commit reserved stock")
async def commit(effect: Effect, body: CommitRequest) -> dict[str, Any]:
    """Turn a reservation's units into committed (shipped) units."""
    reservation = await _move_reservation(effect, body.reservation_id, "committed")
    qty = reservation["qty"]

    def ship(item: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "reserved": item["reserved"] - qty,
            "committed": item["committed"] + qty,
            "updated_at": utcnow(),
        }

    item = await effect.update_versioned(items, reservation["sku"], ship)
    return {"reservation_id": reservation["id"], "committed": qty, "sku": item["sku"]}


async def _move_reservation(effect: Effect, reservation_id: str, status: str) -> dict[str, Any]:
    def move(row: Mapping[str, Any]) -> dict[str, Any]:
        # Only a held reservation can be released or committed, and only once.
        if row["status"] != "reserved":
            raise Rejected(
                f"reservation_{row['status']}",
                f"reservation {reservation_id} is already {row['status']}",
            )
        return {"status": status, "updated_at": utcnow()}

    return await effect.update_versioned(reservations, reservation_id, move)


def create_app(settings: ParticipantSettings | None = None) -> FastAPI:
    """The inventory app."""
    return create_participant_app(
        SERVICE, settings, effects=effects, routers=[queries], demo=DEMO, title="inventory"
    )
