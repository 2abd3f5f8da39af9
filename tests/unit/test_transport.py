from __future__ import annotations

import pytest

from orchestrator.errors import NotFound
from orchestrator.machine import OutcomeKind
from orchestrator.transport.outcome import classify_response, classify_status
from orchestrator.transport.routing import Routing


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, OutcomeKind.SUCCEEDED),
        (201, OutcomeKind.SUCCEEDED),
        (204, OutcomeKind.SUCCEEDED),
        (409, OutcomeKind.REJECTED),
        (422, OutcomeKind.REJECTED),
        (400, OutcomeKind.REJECTED),
        (404, OutcomeKind.REJECTED),
        (408, OutcomeKind.TRANSIENT),
        (429, OutcomeKind.TRANSIENT),
        (500, OutcomeKind.TRANSIENT),
        (503, OutcomeKind.TRANSIENT),
        (302, OutcomeKind.TRANSIENT),
    ],
)
def test_status_classification(status: int, kind: OutcomeKind) -> None:
    assert classify_status(status) is kind


def test_success_must_be_json() -> None:
    assert classify_response(200, b'{"id": 1}') == (OutcomeKind.SUCCEEDED, {"id": 1}, None)
    assert classify_response(204, b"") == (OutcomeKind.SUCCEEDED, {}, None)
    kind, _, error = classify_response(200, b"<html>")
    assert kind is OutcomeKind.TRANSIENT
    assert error is not None


def test_error_message_is_extracted() -> None:
    kind, _, error = classify_response(409, b'{"error": {"message": "insufficient funds"}}')
    assert kind is OutcomeKind.REJECTED
    assert error == "HTTP 409: insufficient funds"


def test_round_robin_with_failover_order() -> None:
    routing = Routing({"p": ["http://a", "http://b", "http://c"]})
    assert list(routing.candidates("p")) == ["http://a", "http://b", "http://c"]
    assert list(routing.candidates("p")) == ["http://b", "http://c", "http://a"]
    with pytest.raises(NotFound):
        list(routing.candidates("q"))
