"""The machine's tables cover what they must: every event, every request, every status."""

from __future__ import annotations

from typing import get_args

from orchestrator.machine import (
    CancelRequested,
    CompensateRequested,
    Event,
    RetryRequested,
    SagaStatus,
)
from orchestrator.machine.requests import REFUSED_IN_STATUS, REFUSED_WHEN
from orchestrator.machine.transitions import HANDLERS


def test_every_event_type_has_a_handler() -> None:
    assert set(HANDLERS) == set(get_args(Event))


def test_each_request_is_considered_in_one_status_only() -> None:
    considered = {
        request: set(SagaStatus) - set(refused) for request, refused in REFUSED_IN_STATUS.items()
    }
    assert considered == {
        CancelRequested: {SagaStatus.RUNNING},
        RetryRequested: {SagaStatus.FAILED},
        CompensateRequested: {SagaStatus.FAILED},
    }
    assert set(REFUSED_WHEN) == set(REFUSED_IN_STATUS)
