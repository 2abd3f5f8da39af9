"""/v1/sagas: start, read, list, history, cancel, retry, compensate."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from orchestrator.api.deps import Caller, Ops, Rt, saga_id
from orchestrator.api.views import saga_view
from orchestrator.definitions import NAME_PATTERN
from orchestrator.machine import (
    CancelRequested,
    CompensateRequested,
    Event,
    RetryRequested,
    SagaStatus,
)

router = APIRouter(prefix="/v1/sagas", tags=["sagas"])


class StartSaga(BaseModel):
    definition: str = Field(pattern=NAME_PATTERN)
    version: int | None = Field(default=None, ge=1)
    input: dict[str, Any] = Field(default_factory=dict)


class RetryFilter(BaseModel):
    status: SagaStatus = SagaStatus.FAILED
    definition: str | None = Field(default=None, pattern=NAME_PATTERN)
    step: str | None = Field(default=None, max_length=64)


@router.post("", status_code=201)
async def start_saga(
    ops: Ops,
    body: StartSaga,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JSONResponse:
    """Start a saga; it runs asynchronously. A repeated ``Idempotency-Key`` answers 200."""
    saga, stored, created = await ops.start_saga(
        body.definition, body.version, body.input, idempotency_key
    )
    return JSONResponse(saga_view(saga, stored.definition), status_code=201 if created else 200)


@router.get("")
async def list_sagas(
    ops: Ops,
    rt: Rt,
    status: SagaStatus | None = None,
    definition: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    """Newest first, ``limit`` per page; pass ``next_cursor`` back for the next page."""
    page = await rt.reader.page(
        status=status.value if status else None, definition=definition, limit=limit, cursor=cursor
    )
    items = []
    for saga in page.items:
        stored = await ops.definition(saga.definition_name, saga.definition_version)
        items.append(saga_view(saga, stored.definition))
    return {"items": items, "next_cursor": page.next_cursor}


@router.post("/retry")
async def retry_matching(ops: Ops, who: Caller, body: RetryFilter) -> dict[str, Any]:
    """Re-arm every saga matching the filter (by default every ``failed`` one)."""
    count = await ops.retry_matching(body.status.value, body.definition, body.step, who)
    return {"retried": count}


@router.get("/{id}")
async def get_saga(ops: Ops, id: str) -> dict[str, Any]:
    saga = await ops.saga(saga_id(id))
    stored = await ops.definition(saga.definition_name, saga.definition_version)
    return saga_view(saga, stored.definition)


@router.get("/{id}/events")
async def saga_events(ops: Ops, rt: Rt, id: str) -> dict[str, Any]:
    saga = await ops.saga(saga_id(id))
    return {"saga_id": str(saga.id), "items": await rt.reader.history(saga.id)}


async def _request(ops: Ops, id: str, event: Event, who: str) -> dict[str, Any]:
    saga = await ops.request(saga_id(id), event, who)
    stored = await ops.definition(saga.definition_name, saga.definition_version)
    return saga_view(saga, stored.definition)


@router.post("/{id}/cancel")
async def cancel(ops: Ops, who: Caller, id: str) -> dict[str, Any]:
    """A running saga not past its pivot compensates; otherwise 409 saying why."""
    return await _request(ops, id, CancelRequested(f"cancelled by {who}"), who)


@router.post("/{id}/retry")
async def retry(ops: Ops, who: Caller, id: str) -> dict[str, Any]:
    """A ``failed`` saga resumes where it stopped, with a fresh retry budget."""
    return await _request(ops, id, RetryRequested(), who)


@router.post("/{id}/compensate")
async def compensate(ops: Ops, who: Caller, id: str) -> dict[str, Any]:
    """A ``failed`` saga parked before its pivot compensates instead."""
    return await _request(ops, id, CompensateRequested(), who)
