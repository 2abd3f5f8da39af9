"""A real OTLP/HTTP trace receiver for tests: ``POST /v1/traces`` with protobuf bodies.

It decodes each export with OpenTelemetry's own protobuf classes (installed
with the ``otel`` extra) and keeps every span it received, flattened.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    attributes: dict[str, Any]
    service: str


def _value(any_value: Any) -> Any:
    return getattr(any_value, any_value.WhichOneof("value"))


@dataclass
class OtlpReceiver:
    spans: list[ReceivedSpan] = field(default_factory=list)
    exports: int = 0

    def app(self) -> Starlette:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        async def traces(request: Request) -> Response:
            body = await request.body()
            if request.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            if request.headers.get("content-type") != "application/x-protobuf":
                return Response(status_code=415)
            export = trace_service_pb2.ExportTraceServiceRequest()
            export.ParseFromString(body)
            self.exports += 1
            for resource_spans in export.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(
                            ReceivedSpan(
                                name=span.name,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                                kind=span.kind,
                                start_ns=span.start_time_unix_nano,
                                end_ns=span.end_time_unix_nano,
                                status_code=span.status.code,
                                attributes={a.key: _value(a.value) for a in span.attributes},
                                service=str(resource.get("service.name")),
                            )
                        )
            answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            return Response(answer, media_type="application/x-protobuf")

        return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])
