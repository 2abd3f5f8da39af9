"""OTLP/HTTP export of participant calls; imported only when ``SAGA_OTEL_ENDPOINT`` is set.

The standard ``OTEL_*`` variables still apply to what they configure here:
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (the service is
``saga-orchestrator`` otherwise), ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_EXPORTER_OTLP_TIMEOUT``, ``OTEL_BSP_*`` (batching) and ``OTEL_TRACES_SAMPLER``.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from orchestrator import tracing
from orchestrator.machine import OutcomeKind
from orchestrator.otel import CallSpans
from orchestrator.transport.call import CallRequest
from orchestrator.transport.outcome import CallResult

# The ids of the span being started: the call already sent them to the
# participant, so the span must carry exactly those, not fresh random ones.
_ids: ContextVar[tuple[int, int]] = ContextVar("saga_call_span_ids")

#: Outcomes that mean the call did not do what it was asked.
_FAILED = (OutcomeKind.TRANSIENT, OutcomeKind.REJECTED)


class _SentIds(IdGenerator):
    def generate_trace_id(self) -> int:
        return _ids.get()[0]

    def generate_span_id(self) -> int:
        return _ids.get()[1]


def _resource() -> Resource:
    detected = Resource.create()
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        return detected.merge(Resource({SERVICE_NAME: "saga-orchestrator"}))
    return detected


class OtlpCallSpans(CallSpans):
    """One CLIENT span per participant call, batched to ``<endpoint>/v1/traces``."""

    def __init__(self, endpoint: str) -> None:
        # A provider of our own, not the global one: the application embedding
        # the orchestrator keeps whatever tracing it set up.
        self._provider = TracerProvider(resource=_resource(), id_generator=_SentIds())
        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
        self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer("saga-orchestrator")

    def record(self, definition: str, request: CallRequest, result: CallResult) -> None:
        sent = tracing.parse(request.traceparent)
        if sent is None:
            return  # no traceparent went out: no participant span to be the parent of
        end_ns = time.time_ns()
        start_ns = end_ns - int(result.duration_ms * 1_000_000)
        i = request.identity
        attributes: dict[str, AttributeValue] = {
            "saga.id": i.saga_id,
            "saga.definition": definition,
            "saga.participant": i.participant,
            "saga.step": i.step,
            "saga.phase": i.phase,
            "saga.attempt": i.attempt,
            "saga.outcome": result.kind.value,
            "http.request.method": "POST",
        }
        if result.url is not None:
            attributes["url.full"] = result.url + request.path
        if result.status is not None:
            attributes["http.response.status_code"] = result.status
        if result.fault is not None:
            attributes["saga.fault"] = result.fault
        token = _ids.set((int(sent[0], 16), int(sent[1], 16)))
        try:
            span = self._tracer.start_span(
                f"saga.call {i.participant} {i.step} {i.phase}",
                context=Context(),  # a root in the saga's trace, whatever span is current
                kind=SpanKind.CLIENT,
                attributes=attributes,
                start_time=start_ns,
            )
        finally:
            _ids.reset(token)
        if result.kind in _FAILED:
            span.set_status(Status(StatusCode.ERROR, result.error))
        span.end(end_time=end_ns)

    def shutdown(self) -> None:
        self._provider.shutdown()
