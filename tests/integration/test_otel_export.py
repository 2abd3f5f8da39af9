"""OpenTelemetry export: spans reach a real OTLP/HTTP receiver, ids match the traceparents sent."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.integration.test_saga_flow import register
from tests.support.orchestrator import (
    cloned_database,
    fast_settings,
    running_orchestrator,
    step,
    wait_final,
)
from tests.support.otlp import OtlpReceiver
from tests.support.participant import ScriptedParticipant
from tests.support.servers import serve_app

pytest.importorskip(
    "opentelemetry.exporter.otlp.proto.http",
    reason="the otel extra is not installed (pip install -e '.[otel]'; scripts/bootstrap does)",
)

pytestmark = pytest.mark.postgres

SPAN_KIND_CLIENT = 3
STATUS_CODE_ERROR = 2


@pytest.fixture
def database(template_db: str) -> Iterator[str]:
    with cloned_database(template_db) as url:
        yield url


async def test_each_call_is_one_span_under_the_saga_trace(
    database: str, participant: ScriptedParticipant, participant_url: str
) -> None:
    participant.script["b"] = [503, 200]  # a retried call is a span of its own
    participant.steady["c"] = 409  # and so are compensations
    receiver = OtlpReceiver()
    async with serve_app(receiver.app()) as collector:
        settings = fast_settings(database, {"p": [participant_url]}, otel_endpoint=collector)
        async with running_orchestrator(settings) as api:
            await register(api, "traced", [step("a"), step("b"), step("c")])
            caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            response = await api.post(
                "/v1/sagas", json={"definition": "traced"}, headers={"traceparent": caller}
            )
            saga = await wait_final(api, response.json()["id"])
            events = (await api.get(f"/v1/sagas/{saga['id']}/events")).json()["items"]
        # Leaving the orchestrator stops it, which sends the last batch.
    assert saga["status"] == "compensated"
    assert saga["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"

    sent = {}
    for request in participant.requests:
        match = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01", request["traceparent"])
        assert match is not None
        assert match.group(1) == saga["trace_id"]
        sent[match.group(2)] = request
    # a: action, b: 503 then 200, c: 409, then b and a compensated.
    assert len(participant.requests) == len(sent) == 6

    spans = {s.span_id: s for s in receiver.spans}
    assert len(receiver.spans) == len(spans) == 6
    assert set(spans) == set(sent)
    assert receiver.exports >= 1
    # The history the orchestrator recorded of each call, to compare the spans with.
    calls = {(e["step"], e["phase"], e["attempt"]): e for e in events if e["kind"] == "call"}
    assert len(calls) == 6
    for span_id, span in spans.items():
        request = sent[span_id]
        assert span.trace_id == saga["trace_id"]
        assert span.parent_span_id == ""
        assert span.kind == SPAN_KIND_CLIENT
        assert span.service == "saga-orchestrator"
        assert span.name == f"saga.call p {request['step']} {request['phase']}"
        assert 0 < span.start_ns <= span.end_ns
        attempt = int(request["attempt"])
        call = calls[(request["step"], request["phase"], attempt)]
        a = span.attributes
        assert a["saga.id"] == saga["id"]
        assert a["saga.definition"] == "traced"
        assert a["saga.participant"] == "p"
        assert (a["saga.step"], a["saga.phase"], a["saga.attempt"]) == (
            request["step"],
            request["phase"],
            attempt,
        )
        assert a["saga.outcome"] == call["outcome"]
        assert a["http.response.status_code"] == call["detail"]["status"]
        route = "do" if request["phase"] == "action" else "undo"
        assert a["url.full"] == f"{participant_url}/{route}/{request['step']}"
        assert (span.status_code == STATUS_CODE_ERROR) == (call["outcome"] != "succeeded")
        assert "saga.fault" not in a

    keys = ("saga.step", "saga.phase", "saga.attempt", "saga.outcome", "http.response.status_code")
    outcomes = sorted(tuple(s.attributes[k] for k in keys) for s in spans.values())
    assert outcomes == [
        ("a", "action", 1, "succeeded", 200),
        ("a", "compensation", 1, "succeeded", 200),
        ("b", "action", 1, "transient", 503),
        ("b", "action", 2, "succeeded", 200),
        ("b", "compensation", 1, "succeeded", 200),
        ("c", "action", 1, "rejected", 409),
    ]
