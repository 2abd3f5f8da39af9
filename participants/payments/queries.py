"""Read endpoints of the payments service, for people and for audits."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel

from participants.kit import DatabaseDep, Rejected
from participants.payments.schema import accounts, charges, movements

router = APIRouter(tags=["payments"])


class Account(BaseModel):
    """An account and its balance (minor units)."""

    id: str
    owner: str
    balance: int
    version: int
    updated_at: datetime


class Charge(BaseModel):
    """A charge: ``captured``, or ``refunded`` by a compensation."""

    id: str
    account_id: str
    amount: int
    status: str
    order_id: str | None
    saga_id: str
    version: int
    created_at: datetime
    updated_at: datetime


class Movement(BaseModel):
    """One change of a balance; ``amount`` is negative for charges."""

    id: int
    account_id: str
    kind: str
    amount: int
    balance_after: int
    charge_id: str | None
    saga_id: str | None
    created_at: datetime


class AccountAudit(BaseModel):
    """An account's balance against the sum of its movements."""

    id: str
    balance: int
    movements_total: int
    lowest_balance: int
    consistent: bool


class Audit(BaseModel):
    """Whether every balance is explained by its movements and never went negative."""

    consistent: bool
    total_balance: int
    accounts: list[AccountAudit]


@router.get("/accounts")
async def list_accounts(db: DatabaseDep) -> list[Account]:
    """Every account."""
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(accounts).order_by(accounts.c.id))).mappings()
        return [Account.model_validate(dict(row)) for row in rows]


@router.get("/accounts/{account_id}")
async def get_account(account_id: str, db: DatabaseDep) -> Account:
    """One account."""
    async with db.read() as conn:
        query = sa.select(accounts).where(accounts.c.id == account_id)
        row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise Rejected("account_not_found", f"no account {account_id!r}", status=404)
    return Account.model_validate(dict(row))


@router.get("/charges/{charge_id}")
async def get_charge(charge_id: str, db: DatabaseDep) -> Charge:
    """One charge."""
    async with db.read() as conn:
        query = sa.select(charges).where(charges.c.id == charge_id)
        row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise Rejected("charge_not_found", f"no charge {charge_id!r}", status=404)
    return Charge.model_validate(dict(row))


@router.get("/movements")
async def list_movements(
    db: DatabaseDep,
    account: Annotated[str | None, Query(description="Only this account's movements.")] = None,
    saga_id: Annotated[str | None, Query(description="Only this saga's movements.")] = None,
) -> list[Movement]:
    """Movements in the order they happened."""
    query = sa.select(movements).order_by(movements.c.id)
    if account is not None:
        query = query.where(movements.c.account_id == account)
    if saga_id is not None:
        query = query.where(movements.c.saga_id == saga_id)
    async with db.read() as conn:
        rows = (await conn.execute(query)).mappings()
        return [Movement.model_validate(dict(row)) for row in rows]


@router.get("/audit")
async def audit(db: DatabaseDep) -> Audit:
    """Check every balance against its movements (one snapshot)."""
    totals = (
        sa.select(
            movements.c.account_id,
            sa.func.sum(movements.c.amount).label("total"),
            sa.func.min(movements.c.balance_after).label("lowest"),
        )
        .group_by(movements.c.account_id)
        .subquery()
    )
    query = (
        sa.select(accounts.c.id, accounts.c.balance, totals.c.total, totals.c.lowest)
        .outerjoin(totals, totals.c.account_id == accounts.c.id)
        .order_by(accounts.c.id)
    )
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    audits = [
        AccountAudit(
            id=row.id,
            balance=row.balance,
            movements_total=int(row.total or 0),
            lowest_balance=int(row.lowest if row.lowest is not None else row.balance),
            consistent=int(row.total or 0) == row.balance and (row.lowest or 0) >= 0,
        )
        for row in rows
    ]
    return Audit(
        consistent=all(a.consistent for a in audits),
        total_balance=sum(a.balance for a in audits),
        accounts=audits,
    )
