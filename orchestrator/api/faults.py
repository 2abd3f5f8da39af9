"""/v1/faults: transport fault rules (404 unless SAGA_ENABLE_FAULTS)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api.deps import Rt, faults_enabled
from orchestrator.clock import utcnow
from orchestrator.errors import NotFound

router = APIRouter(prefix="/v1/faults", tags=["faults"], dependencies=[Depends(faults_enabled)])


class FaultRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["error", "timeout", "delay", "drop_request", "drop_response"]
    definition: str | None = Field(default=None, max_length=64)
    participant: str | None = Field(default=None, max_length=64)
    step: str | None = Field(default=None, max_length=64)
    phase: Literal["action", "compensation"] | None = None
    status: int | None = Field(default=None, ge=400, le=599)
    delay_ms: int | None = Field(default=None, ge=0, le=600_000)
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    count: int | None = Field(default=None, ge=1)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)


@router.post("", status_code=201)
async def add_rule(rt: Rt, body: FaultRuleIn) -> dict[str, Any]:
    rule = await rt.faults.add(body.model_dump(), utcnow())
    if rt.injector is not None:
        rt.injector.invalidate()
    return rule.as_json()


@router.get("")
async def list_rules(rt: Rt) -> dict[str, Any]:
    return {"items": [r.as_json() for r in await rt.faults.all()]}


@router.delete("/{rule_id}")
async def delete_rule(rt: Rt, rule_id: Annotated[int, Path(ge=1, le=2**62)]) -> dict[str, Any]:
    if not await rt.faults.delete(rule_id):
        raise NotFound(f"unknown fault rule {rule_id}")
    if rt.injector is not None:
        rt.injector.invalidate()
    return {"deleted": 1}


@router.delete("")
async def clear_rules(rt: Rt) -> dict[str, Any]:
    deleted = await rt.faults.clear()
    if rt.injector is not None:
        rt.injector.invalidate()
    return {"deleted": deleted}
