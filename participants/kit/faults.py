"""In-service fault injection: make a kit-built endpoint fail on purpose.

Modes, applied to idempotent endpoints only:

- ``error_before_commit`` — the handler runs, then the transaction is rolled
  back and the caller gets ``status`` (500): nothing happened, the key is free.
- ``error_after_commit`` — the effect and its key are committed, then the
  caller gets ``status``: the classic lost answer; a retry replays it.
- ``delay`` — a slow participant: the call claims its key, then waits
  ``delay_ms`` before running the handler (delays add up). Duplicates sent
  meanwhile wait for it (up to the lock timeout, then 503), as they would
  behind any slow call.
- ``reject`` — a business refusal (``status``, 409 by default), handled like
  any rejection: kept as an action key's answer, not kept for a compensation.

Rules live in the process (one board per app) and are matched by ``endpoint``
and ``phase`` (absent = any). Each rule draws from its own
``random.Random(seed)``, so a seeded rule fires on the same calls every run.
The endpoints exist only when the service is configured with
``enable_faults``; otherwise ``/_faults`` answers 404.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from itertools import count
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, model_validator

from participants.kit.errors import Rejected
from participants.kit.schema import Phase

FaultMode = Literal["error_before_commit", "error_after_commit", "delay", "reject"]


class FaultSpec(BaseModel):
    """A rule as posted to ``POST /_faults``."""

    endpoint: str | None = Field(default=None, description="Path of the endpoint; absent = any.")
    phase: Phase | None = Field(default=None, description="action or compensation; absent = any.")
    mode: FaultMode
    status: int | None = Field(
        default=None, ge=400, le=599, description="Answer status (500 for errors, 409 for reject)."
    )
    delay_ms: int = Field(default=200, ge=0, le=600_000)
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    count: int | None = Field(default=None, ge=1, description="Fire at most this often.")
    seed: int | None = None

    @model_validator(mode="after")
    def _reject_is_a_business_no(self) -> FaultSpec:
        # An action's rejection is kept as the key's answer, so it must be one
        # the orchestrator will not retry.
        status = self.status
        if self.mode == "reject" and status is not None and (status >= 500 or status in (408, 429)):
            raise ValueError("a reject fault needs a 4xx status other than 408/429")
        return self


class FaultRule(FaultSpec):
    """A rule on the board, with its id and how often it has fired."""

    id: int
    fired: int = 0


@dataclass(frozen=True)
class Injection:
    """What the faults drawn for one call ask for."""

    delay_s: float = 0.0
    mode: FaultMode | None = None
    status: int = 500

    async def hold(self) -> None:
        """Wait out the drawn delay (the caller holds its key meanwhile)."""
        if self.delay_s:
            await asyncio.sleep(self.delay_s)

    def rejection(self) -> Rejected:
        """The refusal a ``reject`` fault stands for."""
        return Rejected("fault_injected", "rejected by an injected fault", status=self.status)


@dataclass
class FaultBoard:
    """The rules of one service and the random streams that decide when they fire."""

    rules: dict[int, FaultRule] = field(default_factory=dict)
    _streams: dict[int, random.Random] = field(default_factory=dict)
    _ids: count[int] = field(default_factory=lambda: count(1))

    def add(self, spec: FaultSpec) -> FaultRule:
        """Put a rule on the board."""
        rule = FaultRule(id=next(self._ids), **spec.model_dump())
        self.rules[rule.id] = rule
        self._streams[rule.id] = random.Random(spec.seed)
        return rule

    def remove(self, rule_id: int) -> bool:
        """Take one rule off; False if there was none with that id."""
        self._streams.pop(rule_id, None)
        return self.rules.pop(rule_id, None) is not None

    def clear(self) -> None:
        """Take every rule off."""
        self.rules.clear()
        self._streams.clear()

    def draw(self, endpoint: str, phase: Phase) -> tuple[Injection, list[FaultRule]]:
        """Decide the faults for one call; returns the injection and the rules that fired.

        Every matching rule draws once per call (so seeded sequences do not depend
        on other rules); delays add up, and the first firing failure mode wins.
        """
        delay_ms, mode, status, fired = 0, None, 500, []
        for rule in self.rules.values():
            if rule.endpoint not in (None, endpoint) or rule.phase not in (None, phase):
                continue
            if rule.count is not None and rule.fired >= rule.count:
                continue
            if self._streams[rule.id].random() >= rule.probability:
                continue
            if rule.mode != "delay" and mode is not None:
                continue  # an earlier failure already decides this call's answer
            rule.fired += 1
            fired.append(rule)
            if rule.mode == "delay":
                delay_ms += rule.delay_ms
            else:
                mode = rule.mode
                status = rule.status or (409 if rule.mode == "reject" else 500)
        return Injection(delay_ms / 1000, mode, status), fired


def faults_router(board: FaultBoard) -> APIRouter:
    """``GET/POST/DELETE /_faults`` over ``board``."""
    router = APIRouter(prefix="/_faults", tags=["faults"])

    @router.get("")
    async def list_faults() -> list[FaultRule]:
        return list(board.rules.values())

    @router.post("", status_code=201)
    async def add_fault(spec: FaultSpec) -> FaultRule:
        return board.add(spec)

    @router.delete("", status_code=204)
    async def clear_faults() -> Response:
        board.clear()
        return Response(status_code=204)

    @router.delete("/{rule_id}", status_code=204)
    async def remove_fault(rule_id: int) -> Response:
        if not board.remove(rule_id):
            raise Rejected("fault_not_found", f"no fault rule {rule_id}", status=404)
        return Response(status_code=204)

    return router
