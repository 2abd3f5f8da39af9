"""/v1/definitions: register and read versioned saga definitions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from fastapi.responses import JSONResponse

from orchestrator.api.deps import Ops, Rt
from orchestrator.api.views import definition_view

router = APIRouter(prefix="/v1/definitions", tags=["definitions"])


@router.post("", status_code=201)
async def register(ops: Ops, body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
    """Register a definition: 201 for a new version, 200 when identical to the latest."""
    stored, created = await ops.register(body)
    return JSONResponse(definition_view(stored), status_code=201 if created else 200)


@router.get("")
async def list_definitions(rt: Rt) -> dict[str, Any]:
    rows = await rt.definitions.latest_versions()
    return {
        "items": [
            {"name": name, "version": version, "created_at": created.isoformat()}
            for name, version, created in rows
        ]
    }


@router.get("/{name}")
async def latest(ops: Ops, name: str) -> dict[str, Any]:
    return definition_view(await ops.definition(name))


@router.get("/{name}/versions/{version}")
async def one_version(ops: Ops, name: str, version: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
    return definition_view(await ops.definition(name, version))
