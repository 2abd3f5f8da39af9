"""Transport fault rules as values: what a rule matches and whether it fires (pure).

Shared by the store (which keeps the rules, so every worker applies and counts
them alike), the transport (which applies the rule picked for a call) and the
picker between them. Importing nothing of either keeps them apart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: The fields that narrow a rule to some calls; an absent one matches any call.
SCOPE_FIELDS = ("definition", "participant", "step", "phase")

#: What a rule can do to a call.
MODES = ("error", "timeout", "delay", "drop_request", "drop_response")


@dataclass(frozen=True)
class FaultRule:
    """One stored rule, with how often it has fired so far."""

    id: int
    mode: str
    definition: str | None = None
    participant: str | None = None
    step: str | None = None
    phase: str | None = None
    status: int | None = None
    delay_ms: int | None = None
    probability: float = 1.0
    count: int | None = None
    seed: int | None = None
    fired: int = 0
    created_at: datetime | None = None

    def matches(self, scope: dict[str, str]) -> bool:
        """Whether every scope field the rule sets equals the call's."""
        return all(
            getattr(self, name) is None or getattr(self, name) == scope.get(name)
            for name in SCOPE_FIELDS
        )

    def draws(self, saga_id: str, step: str, phase: str, attempt: int) -> bool:
        """Whether the rule's probability lets it fire for this attempt of a call.

        With a seed the draw depends only on the seed, the rule and the call, so
        the same seed gives the same schedule whichever worker makes the call.
        """
        if self.probability >= 1.0:
            return True
        if self.seed is None:
            return random.random() < self.probability
        key = f"{self.seed}:{self.id}:{saga_id}:{step}:{phase}:{attempt}"
        return random.Random(key).random() < self.probability

    def as_json(self) -> dict[str, Any]:
        """The rule as ``/v1/faults`` shows it."""
        return {
            "id": self.id,
            "definition": self.definition,
            "participant": self.participant,
            "step": self.step,
            "phase": self.phase,
            "mode": self.mode,
            "status": self.status,
            "delay_ms": self.delay_ms,
            "probability": self.probability,
            "count": self.count,
            "seed": self.seed,
            "fired": self.fired,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }
