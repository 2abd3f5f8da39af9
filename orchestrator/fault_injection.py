"""Which stored fault rule fires for a participant call, counted in the database.

Rules live in the database (so every worker applies them and ``count`` holds
across workers); each worker re-reads them at most every ``refresh_s``. The
composition root hands a :class:`FaultInjector` to the transport as its
``FaultPicker``, so the transport itself never reads the store.
"""

from __future__ import annotations

import asyncio
import logging
import time

from orchestrator.fault_rules import FaultRule
from orchestrator.store.errors import StoreUnavailable
from orchestrator.store.faults import FaultStore
from orchestrator.transport.call import CallIdentity

log = logging.getLogger("orchestrator.faults")


class FaultInjector:
    """Picks the rule (if any) that fires for a call, counting it in the database."""

    def __init__(self, store: FaultStore, refresh_s: float = 0.5) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._rules: list[FaultRule] = []
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """Re-read the rules before the next call (they were just changed)."""
        self._loaded_at = float("-inf")

    async def _current(self) -> list[FaultRule]:
        if time.monotonic() - self._loaded_at >= self.refresh_s:
            async with self._lock:
                if time.monotonic() - self._loaded_at >= self.refresh_s:
                    try:
                        self._rules = await self.store.all()
                    except StoreUnavailable as exc:
                        # A database outage must not stop a saga's call: keep the
                        # rules we know and try again at the next refresh.
                        log.warning(
                            "re-reading fault rules failed, keeping %d: %s", len(self._rules), exc
                        )
                    self._loaded_at = time.monotonic()
        return self._rules

    async def pick(self, call: CallIdentity) -> FaultRule | None:
        """The first matching rule that draws and can still be counted, else ``None``."""
        scope = call.scope()
        for rule in await self._current():
            if not rule.matches(scope) or not rule.draws(
                call.saga_id, call.step, call.phase, call.attempt
            ):
                continue
            try:
                fired = await self.store.fire(rule.id)
            except StoreUnavailable as exc:
                # A fault that cannot be counted is not injected: counts must
                # match what really happened, and an outage must not stop the call.
                log.warning("counting fault rule %d failed, not injecting it: %s", rule.id, exc)
                continue
            if fired:
                return rule
        return None
