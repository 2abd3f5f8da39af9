"""What the report keeps about each saga an invariant caught: enough to explain it.

A violation names a saga; its trail is everything the campaign saw of that
saga, side by side: the orchestrator's events, every participant's ledger
rows and owed completions, and every request the relays saw on the wire.
One reading of the report then answers "who was wrong", without the
databases (which are usually dropped by then).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from orchestrator.check.evidence import Evidence, InvariantResult

MAX_TRAILS = 20
"""Sagas given a trail; beyond that the report would drown the first ones."""


def trails(
    evidence: Evidence,
    events: Mapping[str, list[dict[str, Any]]],
    results: Iterable[InvariantResult],
) -> dict[str, dict[str, Any]]:
    """The trail of each saga named by a violation (the first :data:`MAX_TRAILS`)."""
    caught: list[str] = []
    for result in results:
        for violation in result.violations:
            if violation.saga_id is not None and violation.saga_id not in caught:
                caught.append(violation.saga_id)
    return {saga_id: _trail(evidence, events, saga_id) for saga_id in caught[:MAX_TRAILS]}


def _trail(
    evidence: Evidence, events: Mapping[str, list[dict[str, Any]]], saga_id: str
) -> dict[str, Any]:
    record = evidence.sagas.get(saga_id)
    return {
        "saga": asdict(record) if record is not None else None,
        "events": events.get(saga_id, []),
        "ledger": [
            asdict(row)
            for rows in evidence.ledgers.values()
            for row in rows
            if row.saga_id == saga_id
        ],
        "completions": [
            asdict(row)
            for rows in evidence.completions.values()
            for row in rows
            if row.saga_id == saga_id
        ],
        "wire": [asdict(call) for call in evidence.wire if call.saga_id == saga_id],
    }
