"""OpenTelemetry tracing: on only when an OTLP endpoint is configured (spec/operations §8).

The SDK reads its own environment: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (``/v1/traces`` is
appended) or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``. With neither endpoint
variable nothing is built: no exporter, no thread, nothing sent, nothing logged.

The provider is this process's own (not the global one): aegra's spans never depend on
what a graph module does with ``opentelemetry.trace.set_tracer_provider``.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer

from aegra import __version__
from aegra.logs import get_logger

log = get_logger("aegra.tracing")
ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
FLUSH_MS = 5000  # bound on the last export at shutdown


class Tracing:
    """The tracer provider with its batch exporter; ``shutdown`` flushes and stops it."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("aegra", __version__)

    def shutdown(self) -> None:
        """Blocking (the exporter's last POST): call it from a thread."""
        self.provider.force_flush(FLUSH_MS)
        self.provider.shutdown()


def enabled(environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINTS)


def from_env(environ: Mapping[str, str]) -> Tracing | None:
    """The tracing of this process, or None when no OTLP endpoint is configured."""
    if not enabled(environ):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip()
    if protocol != "http/protobuf":
        log.warning("tracing.protocol_unsupported", protocol=protocol,
                    using="http/protobuf")
    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "aegra"}))
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter()  # endpoint, headers, timeout: from the environment
    provider.add_span_processor(BatchSpanProcessor(exporter))
    log.info("tracing.enabled", endpoint=exporter._endpoint)  # noqa: SLF001
    return Tracing(provider)
