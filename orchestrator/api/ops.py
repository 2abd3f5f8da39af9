"""Operations endpoints: liveness, readiness, metrics, participants."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

from orchestrator.api.deps import Rt, metrics_caller
from orchestrator.api.limits import GuardedRoute
from orchestrator.settings import redact_url
from orchestrator.store.migrate import at_head
from orchestrator.transport.amqp import is_amqp, queue_health

log = logging.getLogger("orchestrator.api")

router = APIRouter(tags=["operations"], route_class=GuardedRoute)
v1 = APIRouter(prefix="/v1", tags=["participants"], route_class=GuardedRoute)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (touches nothing else)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(rt: Rt) -> JSONResponse:
    """Ready when the database answers and its schema is at the latest migration."""
    try:
        async with asyncio.timeout(3):
            ready = await at_head(rt.engine)
        reason = None if ready else "migrations are behind; run 'saga db upgrade'"
    except Exception as exc:
        ready, reason = False, f"database unreachable: {type(exc).__name__}"
    if ready:
        return JSONResponse({"status": "ready"})
    log.warning("not ready: %s", reason)
    body = {
        "status": "not_ready",
        "reason": reason,
        "error": {"code": "not_ready", "message": reason},
    }
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


@router.get(
    "/metrics",
    dependencies=[Depends(metrics_caller)],
    response_class=PlainTextResponse,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
)
async def metrics(rt: Rt) -> Response:
    """Prometheus text format; behind the API key when ``SAGA_METRICS_REQUIRE_KEY`` is set."""
    await rt.refresh_gauges()
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def _health(client: httpx.AsyncClient, url: str) -> str:
    try:
        response = await client.get(url + "/healthz", timeout=1.0)
    except httpx.HTTPError:
        return "down"
    return "up" if response.status_code == 200 else "down"


@v1.get("/participants")
async def participants(rt: Rt) -> dict[str, Any]:
    """Configured participants, their addresses and whether each answers.

    An HTTP address answers when its ``/healthz`` does; a broker address when
    its broker answers and its command queue has a consumer (its depth and
    consumers are shown).
    """
    async with httpx.AsyncClient() as client:
        items = []
        for name, urls in sorted(rt.routing.participants.items()):
            addresses = await asyncio.gather(*(_address_health(client, u) for u in urls))
            item: dict[str, Any] = {"name": name}
            if urls and is_amqp(urls[0]):
                item["transport"] = "amqp"  # HTTP participants keep the v1 shape exactly
            item.update(
                # An address may carry credentials (user:password@): never shown.
                base_urls=[a["url"] for a in addresses],
                urls=addresses,
                health="up" if any(a["health"] == "up" for a in addresses) else "down",
            )
            items.append(item)
    return {"items": items}


async def _address_health(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    if is_amqp(url):
        return await queue_health(url)
    return {"url": redact_url(url), "health": await _health(client, url)}
