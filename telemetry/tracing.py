"""Tracing with OpenTelemetry, propagated through Kafka in W3C ``traceparent`` headers.

Off by default: spans are exported only when the standard OTLP variable
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) names a
collector; the exporter reads the rest of its configuration (headers, timeouts) from the
standard ``OTEL_*`` variables. Without it the global tracer is OpenTelemetry's no-op one,
and the code below costs next to nothing. The context still travels in the headers, so a
trace begun by a caller continues through the API, the command, the worker and the event.
"""

import os
from collections.abc import Iterable, Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context

TRACER_NAME = "device-binding"


def configure_tracing(service: str) -> bool:
    """Install an OTLP exporter if one is configured; whether tracing is on."""
    if not (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        return False
    # Imported only when used: the SDK and exporter are not needed to run untraced.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def trace_headers() -> dict[str, str]:
    """The current trace context as Kafka headers (``traceparent``, maybe ``tracestate``)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_from_headers(headers: Iterable[tuple[str, bytes]] | Mapping[str, str]) -> Context:
    """The trace context a Kafka record's headers carry (an empty one if none)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    carrier = {
        key.lower(): value.decode(errors="replace") if isinstance(value, bytes) else value
        for key, value in items
    }
    return propagate.extract(carrier)
