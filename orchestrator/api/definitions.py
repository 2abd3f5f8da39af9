"""/v1/definitions: register and read versioned saga definitions."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from fastapi.responses import JSONResponse

from orchestrator.api.deps import Ops, Rt
from orchestrator.api.limits import GuardedRoute
from orchestrator.api.views import definition_view
from orchestrator.definitions import MAX_VERSION, NAME_PATTERN
from orchestrator.errors import NotFound

_NAME = re.compile(NAME_PATTERN)

router = APIRouter(prefix="/v1/definitions", tags=["definitions"], route_class=GuardedRoute)


@router.post("", status_code=201)
async def register(ops: Ops, body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
    """Register a definition: 201 for a new version, 200 when identical to the latest."""
    stored, created = await ops.register(body)
    return JSONResponse(definition_view(stored), status_code=201 if created else 200)


@router.get("")
async def list_definitions(rt: Rt) -> dict[str, Any]:
    """Every definition's name and latest version."""
    rows = await rt.definitions.latest_versions()
    return {
        "items": [
            {"name": name, "version": version, "created_at": created.isoformat()}
            for name, version, created in rows
        ]
    }


def _known_shape(name: str) -> str:
    # A name no definition can have is unknown: answered without a query.
    if not _NAME.match(name):
        raise NotFound(f"unknown definition {name!r}")
    return name


@router.get("/{name}")
async def latest(ops: Ops, name: str) -> dict[str, Any]:
    """The latest version of a definition."""
    return definition_view(await ops.definition(_known_shape(name)))


@router.get("/{name}/versions/{version}")
async def one_version(
    ops: Ops, name: str, version: Annotated[int, Path(ge=1, le=MAX_VERSION)]
) -> dict[str, Any]:
    """One version of a definition (running sagas keep the version they started with)."""
    return definition_view(await ops.definition(_known_shape(name), version))
