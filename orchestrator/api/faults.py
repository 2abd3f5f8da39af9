"""/v1/faults: transport fault rules (404 unless SAGA_ENABLE_FAULTS)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api.deps import Rt, faults_enabled
from orchestrator.api.limits import GuardedRoute
from orchestrator.clock import utcnow
from orchestrator.errors import NotFound

router = APIRouter(
    prefix="/v1/faults",
    tags=["faults"],
    dependencies=[Depends(faults_enabled)],
    route_class=GuardedRoute,
)


class FaultRuleIn(BaseModel):
    """A transport fault rule; absent scope fields match anything.

    Numbers are strict: ``true`` or ``2.5`` is refused, not read as 1 or 2.
    """

    model_config = ConfigDict(extra="forbid")

    mode: Literal["error", "timeout", "delay", "drop_request", "drop_response"]
    definition: str | None = Field(default=None, max_length=64)
    participant: str | None = Field(default=None, max_length=64)
    step: str | None = Field(default=None, max_length=64)
    phase: Literal["action", "compensation"] | None = None
    status: int | None = Field(default=None, ge=400, le=599, strict=True)
    delay_ms: int | None = Field(default=None, ge=0, le=600_000, strict=True)
    probability: float = Field(default=1.0, ge=0.0, le=1.0, strict=True)
    count: int | None = Field(default=None, ge=1, le=2**31 - 1, strict=True)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1, strict=True)


@router.post("", status_code=201)
async def add_rule(rt: Rt, body: FaultRuleIn) -> dict[str, Any]:
    """Add a rule; every worker applies it within ``SAGA_FAULT_REFRESH_S``."""
    rule = await rt.faults.add(body.model_dump(), utcnow())
    if rt.injector is not None:
        rt.injector.invalidate()
    return rule.as_json()


@router.get("")
async def list_rules(rt: Rt) -> dict[str, Any]:
    """Every rule, with how often it fired so far."""
    return {"items": [r.as_json() for r in await rt.faults.all()]}


@router.delete("/{rule_id}")
async def delete_rule(rt: Rt, rule_id: Annotated[int, Path(ge=1, le=2**62)]) -> dict[str, Any]:
    """Remove one rule."""
    if not await rt.faults.delete(rule_id):
        raise NotFound(f"unknown fault rule {rule_id}")
    if rt.injector is not None:
        rt.injector.invalidate()
    return {"deleted": 1}


@router.delete("")
async def clear_rules(rt: Rt) -> dict[str, Any]:
    """Remove every rule."""
    deleted = await rt.faults.clear()
    if rt.injector is not None:
        rt.injector.invalidate()
    return {"deleted": deleted}
