"""Operations endpoints: liveness, readiness, metrics, participants."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from orchestrator.api.deps import Rt
from orchestrator.store.migrate import at_head

router = APIRouter(tags=["operations"])
v1 = APIRouter(prefix="/v1", tags=["participants"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
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
    return JSONResponse({"status": "not_ready", "reason": reason}, status_code=503)


@router.get("/metrics")
async def metrics(rt: Rt) -> Response:
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def _health(client: httpx.AsyncClient, url: str) -> str:
    try:
        response = await client.get(url + "/healthz", timeout=1.0)
    except httpx.HTTPError:
        return "down"
    return "up" if response.status_code == 200 else "down"


@v1.get("/participants")
async def participants(rt: Rt) -> dict[str, Any]:
    """Configured participants, their base URLs and whether each answers ``/healthz``."""
    async with httpx.AsyncClient() as client:
        items = []
        for name, urls in sorted(rt.routing.participants.items()):
            health = await asyncio.gather(*(_health(client, u) for u in urls))
            items.append(
                {
                    "name": name,
                    "base_urls": urls,
                    "urls": [{"url": u, "health": h} for u, h in zip(urls, health, strict=True)],
                    "health": "up" if "up" in health else "down",
                }
            )
    return {"items": items}
