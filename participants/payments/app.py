"""The payments service: charge an account (a saga's pivot, typically) and refund it.

Endpoints for sagas: ``POST /charges`` (action) and ``POST /charges/refund``
(its compensation). For people and auditors: ``GET /accounts``,
``GET /accounts/{id}``, ``GET /charges/{id}``, ``GET /movements`` and
``GET /audit``, which checks every balance against its movements.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
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
from participants.payments.demo import DEMO
from participants.payments.queries import router as queries
from participants.payments.schema import accounts, charges, movements

SERVICE = "payments"

effects = EffectRouter()


class ChargeRequest(BaseModel):
    """``POST /charges``: take ``amount`` (minor units) from ``account``."""

    account: str = Field(min_length=1, max_length=64)
    amount: int = Field(gt=0)
    order_id: str | None = Field(default=None, max_length=64)


@effects.action("/charges", summary="Charge an account")
async def charge(effect: Effect, body: ChargeRequest) -> dict[str, Any]:
    """Debit the account; 409 ``insufficient_funds`` if the balance is short."""

    def debit(account: Mapping[str, Any]) -> dict[str, Any]:
        if account["balance"] < body.amount:
            raise Rejected(
                "insufficient_funds",
                f"account {body.account!r} holds {account['balance']}, {body.amount} needed",
                balance=account["balance"],
                amount=body.amount,
            )
        return {"balance": account["balance"] - body.amount, "updated_at": utcnow()}

    account = await effect.update_versioned(accounts, body.account, debit)
    charge_id = str(uuid.uuid4())
    now = utcnow()
    await effect.conn.execute(
        charges.insert().values(
            id=charge_id,
            account_id=body.account,
            amount=body.amount,
            status="captured",
            order_id=body.order_id,
            saga_id=effect.saga_id,
            version=1,
            created_at=now,
            updated_at=now,
        )
    )
    await _record_movement(effect, body.account, "charge", -body.amount, account, charge_id)
    return {
        "charge_id": charge_id,
        "account": body.account,
        "amount": body.amount,
        "balance": account["balance"],
    }


@effects.compensation("/charges/refund", undoes="/charges", summary="Refund a charge")
async def refund(effect: Effect, action: ActionRecord) -> dict[str, Any]:
    """Give the charged amount back and mark the charge refunded."""
    charge_id = action.response["charge_id"]

    def mark_refunded(row: Mapping[str, Any]) -> dict[str, Any]:
        # Only this compensation refunds, and the kit runs it once; a charge in any
        # other state means the data was changed behind the kit's back.
        if row["status"] != "captured":
            raise Rejected("charge_not_captured", f"charge {charge_id} is {row['status']}")
        return {"status": "refunded", "updated_at": utcnow()}

    refunded = await effect.update_versioned(charges, charge_id, mark_refunded)
    amount = refunded["amount"]

    def credit(account: Mapping[str, Any]) -> dict[str, Any]:
        return {"balance": account["balance"] + amount, "updated_at": utcnow()}

    account = await effect.update_versioned(accounts, refunded["account_id"], credit)
    await _record_movement(effect, account["id"], "refund", amount, account, charge_id)
    return {
        "charge_id": charge_id,
        "refunded": amount,
        "account": account["id"],
        "balance": account["balance"],
    }


async def _record_movement(
    effect: Effect,
    account_id: str,
    kind: str,
    amount: int,
    account: Mapping[str, Any],
    charge_id: str,
) -> None:
    await effect.conn.execute(
        sa.insert(movements).values(
            account_id=account_id,
            kind=kind,
            amount=amount,
            balance_after=account["balance"],
            charge_id=charge_id,
            saga_id=effect.saga_id,
            created_at=utcnow(),
        )
    )


def create_app(settings: ParticipantSettings | None = None) -> FastAPI:
    """The payments app."""
    return create_participant_app(
        SERVICE, settings, effects=effects, routers=[queries], demo=DEMO, title="payments"
    )
