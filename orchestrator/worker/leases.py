"""How long this worker may still act on each saga it holds, by its own clock.

The database's lease (``lease_owner`` until ``lease_expires_at``) is what the
other workers go by; this is the holder's side of it. A lease counts from the
moment its write was answered: a worker cut off from the database (its
renewals unanswered, or answered where it cannot hear) stops trusting the
lease when it runs out here, whether or not the database still shows it, so
it makes no call after another worker may have taken the saga over. Its late
writes are fenced by the version; its calls can only be withheld.

Monotonic time: a wall-clock jump must not stretch a lease.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from datetime import datetime

from orchestrator.clock import utcnow


class LeaseClock:
    """Each held saga's lease deadline, on ``time.monotonic()``."""

    def __init__(self) -> None:
        self._until: dict[uuid.UUID, float] = {}

    def granted(self, ids: Iterable[uuid.UUID], expires_at: datetime) -> None:
        """A write giving this worker ``ids`` until ``expires_at`` (wall clock) was answered."""
        until = time.monotonic() + (expires_at - utcnow()).total_seconds()
        for saga_id in ids:
            self._until[saga_id] = until

    def valid(self, saga_id: uuid.UUID) -> bool:
        """Whether the lease on ``saga_id`` has not run out by this worker's clock."""
        return time.monotonic() < self._until.get(saga_id, float("-inf"))

    def forget(self, saga_id: uuid.UUID) -> None:
        """The saga is no longer held here."""
        self._until.pop(saga_id, None)
