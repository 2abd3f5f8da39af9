"""Transport-level fault injection: decide from stored rules, apply as an httpx transport.

Rules live in the database (so every worker applies them and ``count`` holds
across workers); each worker re-reads them at most every ``refresh_s``. Whether
a rule with a probability fires for a call is drawn from a generator seeded by
the rule's seed and the call's identity, so the same seed gives the same
schedule whichever worker makes the call.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

import httpx
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.store.faults import FaultRule, FaultStore

log = logging.getLogger("orchestrator.faults")

MODES = ("error", "timeout", "delay", "drop_request", "drop_response")


class InjectedFault(httpx.TransportError):
    """A failure made on purpose by a fault rule."""


@dataclass(frozen=True)
class CallIdentity:
    definition: str
    participant: str
    step: str
    phase: str
    saga_id: str
    attempt: int

    def scope(self) -> dict[str, str]:
        return {
            "definition": self.definition,
            "participant": self.participant,
            "step": self.step,
            "phase": self.phase,
        }


class FaultInjector:
    """Picks the rule (if any) that fires for a call, counting it in the database."""

    def __init__(self, store: FaultStore, refresh_s: float = 0.5) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._rules: list[FaultRule] = []
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")

    async def _current(self) -> list[FaultRule]:
        if time.monotonic() - self._loaded_at >= self.refresh_s:
            async with self._lock:
                if time.monotonic() - self._loaded_at >= self.refresh_s:
                    try:
                        self._rules = await self.store.all()
                    except (SQLAlchemyError, OSError) as exc:
                        # A database outage must not stop a saga's call: keep the
                        # rules we know and try again at the next refresh.
                        log.warning(
                            "re-reading fault rules failed, keeping %d: %s", len(self._rules), exc
                        )
                    self._loaded_at = time.monotonic()
        return self._rules

    async def pick(self, call: CallIdentity) -> FaultRule | None:
        scope = call.scope()
        for rule in await self._current():
            if not rule.matches(scope) or not _draw(rule, call):
                continue
            try:
                fired = await self.store.fire(rule.id)
            except (SQLAlchemyError, OSError) as exc:
                # A fault that cannot be counted is not injected: counts must
                # match what really happened, and an outage must not stop the call.
                log.warning("counting fault rule %d failed, not injecting it: %s", rule.id, exc)
                continue
            if fired:
                return rule
        return None


def _draw(rule: FaultRule, call: CallIdentity) -> bool:
    if rule.probability >= 1.0:
        return True
    if rule.seed is None:
        return random.random() < rule.probability
    key = f"{rule.seed}:{rule.id}:{call.saga_id}:{call.step}:{call.phase}:{call.attempt}"
    return random.Random(key).random() < rule.probability


class FaultTransport(httpx.AsyncBaseTransport):
    """Wraps the real transport; applies the rule put in ``request.extensions["fault"]``."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        rule: FaultRule | None = request.extensions.get("fault")
        if rule is None:
            return await self.inner.handle_async_request(request)
        if rule.mode == "error":
            return httpx.Response(
                rule.status or 503,
                json={
                    "error": {"code": "injected_fault", "message": "error injected by a fault rule"}
                },
            )
        if rule.mode == "timeout":
            timeout = request.extensions.get("timeout", {}).get("read") or 5.0
            await asyncio.sleep(timeout)
            raise httpx.ReadTimeout("timed out (injected by a fault rule)", request=request)
        if rule.mode == "drop_request":
            raise InjectedFault("request dropped by a fault rule", request=request)
        if rule.mode == "delay":
            await asyncio.sleep((rule.delay_ms or 0) / 1000)
            return await self.inner.handle_async_request(request)
        # drop_response: the participant gets the request and answers; we lose the answer.
        response = await self.inner.handle_async_request(request)
        await response.aread()
        await response.aclose()
        raise InjectedFault("response dropped by a fault rule", request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()
