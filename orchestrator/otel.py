"""Optional export of participant calls as OpenTelemetry spans (the ``otel`` extra).

Off unless ``SAGA_OTEL_ENDPOINT`` names an OTLP/HTTP collector. Then every
participant call becomes one CLIENT span whose trace id is the saga's and whose
span id is the one sent in that call's ``traceparent``, so the participant's
server span is its child. Off, neither the OpenTelemetry SDK nor its exporter
is imported and a call costs one empty method call.
"""

from __future__ import annotations

from orchestrator.settings import Settings
from orchestrator.transport.call import CallRequest
from orchestrator.transport.outcome import CallResult


class OtelNotInstalled(RuntimeError):
    """Export is configured but the ``otel`` extra is not installed."""


class CallSpans:
    """Where finished participant calls go as spans; this one drops them (export off)."""

    def record(self, definition: str, request: CallRequest, result: CallResult) -> None:
        """Record one call that has just finished with ``result`` (its final outcome)."""

    def shutdown(self) -> None:
        """Send what is still buffered; blocks, so call it off the event loop."""


def call_spans(settings: Settings) -> CallSpans:
    """The span recorder ``settings`` ask for; raises ``OtelNotInstalled`` if it cannot exist."""
    if settings.otel_endpoint is None:
        return CallSpans()
    try:
        from orchestrator.otel_export import OtlpCallSpans
    except ImportError as exc:
        if not (exc.name or "").startswith("opentelemetry"):
            raise
        raise OtelNotInstalled(
            "SAGA_OTEL_ENDPOINT is set but OpenTelemetry is not installed: "
            "pip install 'saga-orchestrator[otel]' (or unset SAGA_OTEL_ENDPOINT)"
        ) from exc
    return OtlpCallSpans(settings.otel_endpoint)
