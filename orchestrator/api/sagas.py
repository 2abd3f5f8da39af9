"""/v1/sagas: start, read, list, history, cancel, retry, compensate."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, Field

from orchestrator.api.deps import Caller, Ops, Rt, saga_id
from orchestrator.api.limits import GuardedRoute, check_input_size
from orchestrator.api.views import saga_view
from orchestrator.definitions import MAX_VERSION, NAME_PATTERN
from orchestrator.machine import (
    CancelRequested,
    CompensateRequested,
    Event,
    RetryRequested,
    SagaStatus,
)
from orchestrator.settings import redact_url

router = APIRouter(prefix="/v1/sagas", tags=["sagas"], route_class=GuardedRoute)


class StartSaga(BaseModel):
    """Body of ``POST /v1/sagas``."""

    definition: str = Field(pattern=NAME_PATTERN)
    version: int | None = Field(default=None, ge=1, le=MAX_VERSION, strict=True)
    input: dict[str, Any] = Field(default_factory=dict)


class RetryFilter(BaseModel):
    """Body of ``POST /v1/sagas/retry``: which failed sagas to re-arm."""

    status: SagaStatus = SagaStatus.FAILED
    definition: str | None = Field(default=None, pattern=NAME_PATTERN)
    step: str | None = Field(default=None, pattern=NAME_PATTERN)


@router.post("", status_code=201)
async def start_saga(
    ops: Ops,
    rt: Rt,
    body: StartSaga,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    traceparent: Annotated[str | None, Header(max_length=128)] = None,
) -> JSONResponse:
    """Start a saga; it runs asynchronously. A repeated ``Idempotency-Key`` answers 200.

    A W3C ``traceparent`` header makes the saga's calls part of the caller's trace.
    """
    check_input_size(body.input, "input", rt.settings.max_input_bytes)
    saga, stored, created = await ops.start_saga(
        body.definition, body.version, body.input, idempotency_key, traceparent
    )
    return JSONResponse(saga_view(saga, stored.definition), status_code=201 if created else 200)


def _iso_only(value: Any) -> Any:
    # Pydantic would also take a number of seconds since 1970: the contract says ISO 8601.
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("an ISO 8601 date and time (2026-12-04T20:00:00Z), not a number")
    return value


@router.get("")
async def list_sagas(
    ops: Ops,
    rt: Rt,
    status: SagaStatus | None = None,
    definition: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    step: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    created_after: Annotated[datetime | None, BeforeValidator(_iso_only)] = None,
    created_before: Annotated[datetime | None, BeforeValidator(_iso_only)] = None,
    id: Annotated[str | None, Query(max_length=36)] = None,
) -> dict[str, Any]:
    """Newest first, ``limit`` per page; pass ``next_cursor`` back for the next page.

    ``step``: sagas whose error is at that step; ``created_after`` /
    ``created_before``: ISO 8601 instants; ``id``: a prefix of the saga id.
    """
    page = await rt.reader.page(
        status=status.value if status else None,
        definition=definition,
        limit=limit,
        cursor=cursor,
        step=step,
        created_after=created_after,
        created_before=created_before,
        id_prefix=id,
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
    """The saga: status, each step, results and error."""
    saga = await ops.saga(saga_id(id))
    stored = await ops.definition(saga.definition_name, saga.definition_version)
    return saga_view(saga, stored.definition)


@router.get("/{id}/events")
async def saga_events(ops: Ops, rt: Rt, id: str) -> dict[str, Any]:
    """The saga's history: each call, attempt, outcome and transition."""
    saga = await ops.saga(saga_id(id))
    items = await rt.reader.history(saga.id)
    return {"saga_id": str(saga.id), "items": [_without_credentials(i) for i in items]}


def _without_credentials(item: Any) -> Any:
    # The URL of a call is recorded as configured, which may include user:password@.
    detail = item.get("detail") if isinstance(item, dict) else None
    if isinstance(detail, dict) and isinstance(detail.get("url"), str):
        return {**item, "detail": {**detail, "url": redact_url(detail["url"])}}
    return item


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
