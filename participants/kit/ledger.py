"""``GET /_ledger``: the effects this service applied, one row per idempotency key.

The consistency checker proves exactly-once from these rows rather than from
the orchestrator's own state, so the ledger is read straight from
``participant_effects`` and shows tombstones and rejections too. Status of an
action key: ``applied``, ``compensated`` (applied, then undone), ``tombstone``
(compensated before it arrived; the action will be refused) or ``rejected`` (a
business "no": no effect). A compensation key is always ``applied``: a
refused compensation leaves no row, so that it can be retried.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from participants.kit import store
from participants.kit.database import Database


class LedgerEntry(BaseModel):
    """One idempotency key and what became of its effect."""

    key: str
    saga_id: str
    step: str
    phase: str
    applied_at: datetime
    status: str
    endpoint: str
    http_status: int | None
    updated_at: datetime


def ledger_router(db: Database) -> APIRouter:
    """The ``/_ledger`` route reading ``db``."""
    router = APIRouter(tags=["kit"])

    @router.get("/_ledger")
    async def read_ledger(
        saga_id: Annotated[str | None, Query(description="Only this saga's keys.")] = None,
    ) -> list[LedgerEntry]:
        async with db.read() as conn:
            rows = await store.ledger(conn, saga_id)
        return [
            LedgerEntry(
                key=row.key,
                saga_id=row.saga_id,
                step=row.step,
                phase=row.phase,
                applied_at=row.applied_at,
                status=str(row.status),
                endpoint=row.endpoint,
                http_status=row.status_code,
                updated_at=row.updated_at,
            )
            for row in rows
        ]

    return router
