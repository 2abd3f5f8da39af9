"""``saga check``: a consistency campaign that proves nothing is lost or applied twice.

Run many concurrent sagas against the example services while injecting faults
at the orchestrator's transport and inside the services, killing and pausing
workers and crashing the database; then verify, from the services' own
ledgers and data and from the orchestrator's state, that every saga ended
completed or compensated with each effect applied exactly once.

The invariants (:mod:`~orchestrator.check.invariants`,
:mod:`~orchestrator.check.business`) are pure functions of an
:class:`~orchestrator.check.evidence.Evidence`; everything that does I/O lives
in the other modules.
"""

from orchestrator.check.campaign import Campaign, run_campaign
from orchestrator.check.config import CampaignConfig
from orchestrator.check.evidence import (
    DefinitionInfo,
    Evidence,
    InvariantResult,
    LedgerRow,
    SagaRecord,
    Violation,
    WireCall,
)
from orchestrator.check.invariants import verify

__all__ = [
    "Campaign",
    "CampaignConfig",
    "DefinitionInfo",
    "Evidence",
    "InvariantResult",
    "LedgerRow",
    "SagaRecord",
    "Violation",
    "WireCall",
    "run_campaign",
    "verify",
]
