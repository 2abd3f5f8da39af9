"""The shipping service: create a shipment (a retriable step after the pivot), cancel it.

Endpoints for sagas: ``POST /shipments`` (action; it refuses nothing a saga can
send, as steps after the pivot must eventually succeed) and
``POST /shipments/cancel`` (its compensation, for sagas that place shipping
before their pivot). A call of ``POST /shipments`` that carries the
orchestrator's callback headers (a step with ``"completion": "callback"``) is
answered ``202`` and the shipment reported later, as a carrier booking would
be (see :mod:`participants.kit.callbacks`). Read endpoints are in
:mod:`participants.shipping.queries`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from participants.kit import (
    ActionRecord,
    Effect,
    EffectRouter,
    ParticipantSettings,
    Rejected,
    create_participant_app,
    utcnow,
)
from participants.shipping.demo import DEMO
from participants.shipping.queries import router as queries
from participants.shipping.schema import shipments

SERVICE = "shipping"

effects = EffectRouter()


class CreateShipment(BaseModel):
    """``POST /shipments``: ship ``qty`` of ``sku`` for ``order_id``."""

    order_id: str = Field(min_length=1, max_length=64)
    sku: str = Field(min_length=1, max_length=64)
    qty: int = Field(gt=0)
    reservation_id: str | None = Field(default=None, max_length=36)
    address: str | None = Field(default=None, max_length=500)


@effects.action("/shipments", summary="Create a shipment", callback=True)
async def create_shipment(effect: Effect, body: CreateShipment) -> dict[str, Any]:
    """Create the shipment and hand out its tracking number."""
    shipment_id = str(uuid.uuid4())
    tracking = "TRK" + shipment_id.replace("-", "")[:12].upper()
    now = utcnow()
    await effect.conn.execute(
        shipments.insert().values(
            id=shipment_id,
            status="created",
            tracking_number=tracking,
            saga_id=effect.saga_id,
            version=1,
            created_at=now,
            updated_at=now,
            **body.model_dump(),
        )
    )
    return {
        "shipment_id": shipment_id,
        "tracking_number": tracking,
        "status": "created",
        "order_id": body.order_id,
    }


@effects.compensation("/shipments/cancel", undoes="/shipments", summary="Cancel a shipment")
async def cancel_shipment(effect: Effect, action: ActionRecord) -> dict[str, Any]:
    """Cancel the shipment the action created."""
    shipment_id = action.response["shipment_id"]

    def cancel(row: Mapping[str, Any]) -> dict[str, Any]:
        if row["status"] != "created":
            raise Rejected(
                f"shipment_{row['status']}", f"shipment {shipment_id} is {row['status']}"
            )
        return {"status": "cancelled", "updated_at": utcnow()}

    await effect.update_versioned(shipments, shipment_id, cancel)
    return {"shipment_id": shipment_id, "status": "cancelled"}


def create_app(settings: ParticipantSettings | None = None) -> FastAPI:
    """The shipping app."""
    return create_participant_app(
        SERVICE, settings, effects=effects, routers=[queries], demo=DEMO, title="shipping"
    )
