"""Idempotency keys as the orchestrator sends them, and request fingerprints.

A key reads ``<saga_id>:<step>:<action|compensation>`` and is identical on every
retry of one call. The compensation of a step carries the step's compensation
key; replacing the trailing phase gives the key its action was (or would have
been) sent with, which is how a compensation finds what it has to undo.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from participants.kit.errors import Rejected
from participants.kit.schema import Phase

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 400
MAX_SAGA_ID_LENGTH = 100


@dataclass(frozen=True)
class IdempotencyKey:
    """A parsed ``Idempotency-Key`` header value."""

    saga_id: str
    step: str
    phase: Phase

    @property
    def value(self) -> str:
        """The key as sent on the wire."""
        return f"{self.saga_id}:{self.step}:{self.phase}"

    def with_phase(self, phase: Phase) -> IdempotencyKey:
        """The key of the other half of the same step."""
        return IdempotencyKey(self.saga_id, self.step, phase)

    @classmethod
    def parse(cls, raw: str | None, expected: Phase) -> IdempotencyKey:
        """Parse a header value, refusing (400) anything but a key of phase ``expected``.

        The saga id comes first and holds no colon; the step name is whatever lies
        between it and the phase, so step names may contain colons.
        """
        if not raw:
            raise Rejected(
                "missing_idempotency_key",
                f"the {IDEMPOTENCY_HEADER} header is required on this endpoint",
                status=400,
            )
        parts = raw.split(":")
        well_formed = len(parts) >= 3 and 0 < len(parts[0]) <= MAX_SAGA_ID_LENGTH and parts[1]
        if len(raw) > MAX_KEY_LENGTH or not well_formed:
            raise Rejected(
                "invalid_idempotency_key",
                f"{IDEMPOTENCY_HEADER} must read <saga_id>:<step>:<action|compensation> "
                f"(at most {MAX_KEY_LENGTH} characters, saga id at most {MAX_SAGA_ID_LENGTH})",
                status=400,
            )
        saga_id, phase = parts[0], parts[-1]
        step = ":".join(parts[1:-1])
        if phase != expected:
            raise Rejected(
                "wrong_key_phase",
                f"this endpoint is a {expected} endpoint but the key ends in {phase!r}",
                status=400,
            )
        return cls(saga_id, step, expected)


def fingerprint(body: Any) -> str:
    """A stable hash of a JSON body: key order and whitespace do not matter."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
