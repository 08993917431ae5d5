"""Tracing and metrics: one trace per communication, from its accept to each provider call and receipt.

Off unless configured, and then free: nothing of OpenTelemetry is imported and every hook is a no-op. On when
``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set (Azure: exported by ``azure-monitor-opentelemetry``, with the app's
identity when ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` says so), or when ``OTEL_TRACES_EXPORTER`` /
``OTEL_METRICS_EXPORTER`` name ``console`` or ``otlp`` (locally, no Azure). docs/observability.md explains it.

A communication's trace id is its CommId (both are 128 bits), so every span about it joins one trace whoever
starts it: the accept inside the HTTP request, each queue run (the message also carries the W3C ``traceparent`` of
the span that queued it), each provider call, and each receipt arriving on its own HTTP request. The HTTP request's
own span is linked, not parent: a client's trace stays the client's. Spans carry ``sms.comm_id`` and only the
attributes ``ATTRIBUTES`` names, never a phone number or a body; an exception is recorded by its type alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

log = logging.getLogger("gateway.telemetry")

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
SAMPLER = "OTEL_TRACES_SAMPLER"
EXPORTERS = ("console", "otlp")
INSTRUMENTATION = "gateway"

# What a span or a metric may say: ids, counts, names the gateway chose. Nothing a caller wrote.
ATTRIBUTES = frozenset({
    "sms.comm_id", "sms.provider", "sms.recipients", "sms.attempt", "sms.unit", "sms.outcome", "sms.operation",
    "sms.immediate", "sms.receipt.status", "sms.queue.age_seconds", "http.response.status_code", "error.type",
})
MESSAGES = "sms.messages"  # counter of recipients by sms.outcome and sms.provider
OUTCOMES = ("accepted", "sent", "failed", "opted_out", "delivered", "undelivered", "abandoned")
PROVIDER_DURATION = "sms.provider.duration"  # histogram, seconds, one provider call (a batch)
QUEUE_AGE = "sms.queue.age"  # histogram, seconds between a delivery message's insertion and its processing
QUEUE_WAITING = "sms.queue.waiting"  # histogram, seconds the oldest waiting message had waited when the sweep looked
_TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class _Telemetry:
    """The tracer and instruments of this process, once configured (None: off)."""

    def __init__(self, tracer: Any = None, meter: Any = None) -> None:
        self.tracer = tracer
        self.messages = meter.create_counter(MESSAGES, unit="{message}",
                                             description="SMS recipients by outcome and provider") if meter else None
        self.provider_duration = meter.create_histogram(
            PROVIDER_DURATION, unit="s", description="One provider call (a batch)") if meter else None
        self.queue_age = meter.create_histogram(
            QUEUE_AGE, unit="s", description="Delivery message age when a run takes it") if meter else None
        self.queue_waiting = meter.create_histogram(
            QUEUE_WAITING, unit="s", description="Oldest waiting delivery message's age, each sweep") if meter else None


_lock = threading.Lock()
_state: _Telemetry | None = None


def enabled_by(environ: Mapping[str, str]) -> str | None:
    """Which exporter the environment asks for: ``azure``, ``sdk`` (OTEL_* console or otlp), or None (off)."""
    if environ.get(CONNECTION_STRING, "").strip():
        return "azure"
    if any(environ.get(name, "").strip().lower() in EXPORTERS for name in (TRACES_EXPORTER, METRICS_EXPORTER)):
        return "sdk"
    return None


def _telemetry() -> _Telemetry:
    global _state
    if _state is None:
        with _lock:
            if _state is None:
                _state = _configure(os.environ)
    return _state


def _configure(environ: Mapping[str, str]) -> _Telemetry:
    mode = enabled_by(environ)
    if mode is None:
        return _Telemetry()
    try:
        if mode == "azure":
            _configure_azure_monitor(environ)
            from opentelemetry import metrics, trace
            return _Telemetry(trace.get_tracer(INSTRUMENTATION), metrics.get_meter(INSTRUMENTATION))
        return _configure_sdk(environ)
    except Exception as error:  # telemetry must never stop the gateway
        log.warning("telemetry is off: it could not be configured: %s", type(error).__name__)
        return _Telemetry()


def _configure_azure_monitor(environ: Mapping[str, str]) -> None:
    """Azure Monitor's distro with every automatic instrumentation off: their spans would carry storage filters
    and provider URLs, which can hold phone numbers. Logs stay on the Functions host's path (no duplicates).

    Every trace is kept unless ``OTEL_TRACES_SAMPLER`` says otherwise: the distro's default, a rate limit, would keep
    a communication's accept and drop its receipt. Its fixed-percentage sampler decides by trace id, so a
    communication's spans are kept or dropped together."""
    from azure.monitor.opentelemetry import configure_azure_monitor
    from azure.monitor.opentelemetry._constants import _ALL_SUPPORTED_INSTRUMENTED_LIBRARIES

    sampling = {} if environ.get(SAMPLER, "").strip() else {"sampling_ratio": 1.0}
    configure_azure_monitor(
        instrumentation_options={name: {"enabled": False} for name in _ALL_SUPPORTED_INSTRUMENTED_LIBRARIES},
        disable_logging=True, enable_live_metrics=False, **sampling)


def _configure_sdk(environ: Mapping[str, str]) -> _Telemetry:
    """The OpenTelemetry SDK with the exporters ``OTEL_TRACES_EXPORTER`` and ``OTEL_METRICS_EXPORTER`` name."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or "sms-gateway"})
    traces = environ.get(TRACES_EXPORTER, "").strip().lower()
    tracer_provider = TracerProvider(resource=resource)
    if traces == "console":
        tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    elif traces == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    readers = []
    exported = environ.get(METRICS_EXPORTER, "").strip().lower()
    if exported == "console":
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    elif exported == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    return _Telemetry(tracer_provider.get_tracer(INSTRUMENTATION), meter_provider.get_meter(INSTRUMENTATION))


def use(tracer_provider: Any | None, meter_provider: Any | None = None) -> None:
    """Send this process's spans and metrics to these providers (tests: in-memory exporters); None and None: off,
    and the environment decides again at the next hook."""
    global _state
    with _lock:
        if tracer_provider is None and meter_provider is None:
            _state = None
            return
        _state = _Telemetry(tracer_provider.get_tracer(INSTRUMENTATION) if tracer_provider else None,
                            meter_provider.get_meter(INSTRUMENTATION) if meter_provider else None)


# --- spans ----------------------------------------------------------------------------------------------------------

def now_ns() -> int:
    """A span's start time, taken before its CommId is known (``accepting``)."""
    return time.time_ns()


def _checked(attributes: Mapping[str, object]) -> dict[str, object]:
    unknown = set(attributes) - ATTRIBUTES
    if unknown:
        raise ValueError(f"span attributes not allowed: {sorted(unknown)}")
    return {name: value for name, value in attributes.items() if value is not None}


def _root(comm_id: uuid.UUID) -> Any:
    """The context whose trace id is the CommId: the parent every span about the communication can find."""
    from opentelemetry import trace

    span_id = (comm_id.int & ((1 << 64) - 1)) or 1
    root = trace.SpanContext(trace_id=comm_id.int, span_id=span_id, is_remote=True,
                             trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
    return trace.set_span_in_context(trace.NonRecordingSpan(root))


def _parent(comm_id: uuid.UUID, traceparent: str | None) -> Any:
    """The queued context when the message carries one of this communication's trace, else its root."""
    if traceparent and _TRACEPARENT.match(traceparent) and traceparent[3:35] == comm_id.hex:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        return TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    return _root(comm_id)


@contextlib.contextmanager
def _span(name: str, kind: str, context: Any, *, start: int | None = None, link_current: bool = False,
          **attributes: object) -> Iterator[Any]:
    state = _telemetry()
    from opentelemetry import trace

    links = []
    current = trace.get_current_span().get_span_context()
    if link_current and current.is_valid:
        links.append(trace.Link(current))
    with state.tracer.start_as_current_span(
            name, context=context, kind=getattr(trace.SpanKind, kind), links=links, start_time=start,
            attributes=_checked(attributes), record_exception=False, set_status_on_exception=False) as span:
        try:
            yield span
        except BaseException as error:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
            raise


def _off() -> bool:
    return _telemetry().tracer is None


@contextlib.contextmanager
def accepting(comm_id: uuid.UUID, *, started: int, operation: str, recipients: int,
              immediate: bool) -> Iterator[None]:
    """The accept of a communication, from ``started`` (before it was stored): the first span of its trace, linked
    to the HTTP request's."""
    if _off():
        yield
        return
    with _span("sms.accept", "SERVER", _root(comm_id), start=started, link_current=True, **{
            "sms.comm_id": comm_id.hex, "sms.operation": operation, "sms.recipients": recipients,
            "sms.immediate": immediate}):
        yield


@contextlib.contextmanager
def delivering(comm_id: uuid.UUID, traceparent: str | None, *, attempt: int, unit: range | None,
               queue_age_seconds: float | None) -> Iterator[None]:
    """One queue run of the communication, a child of the span that queued it (or of its root, for a message that
    carries no context: written by the sweep or before tracing)."""
    if queue_age_seconds is not None:
        record(QUEUE_AGE, max(0.0, queue_age_seconds))
    if _off():
        yield
        return
    with _span("sms.deliver", "CONSUMER", _parent(comm_id, traceparent), **{
            "sms.comm_id": comm_id.hex, "sms.attempt": attempt,
            "sms.unit": None if unit is None else f"{unit.start}..{unit.stop - 1}",
            "sms.queue.age_seconds": queue_age_seconds}):
        yield


@contextlib.contextmanager
def abandoning(comm_id: uuid.UUID, traceparent: str | None) -> Iterator[None]:
    """The poison queue's run: the communication (or unit) given up."""
    count("abandoned", None)
    if _off():
        yield
        return
    with _span("sms.abandon", "CONSUMER", _parent(comm_id, traceparent), **{"sms.comm_id": comm_id.hex}):
        yield


@contextlib.contextmanager
def calling_provider(provider: str, comm_id: uuid.UUID, recipients: int) -> Iterator[None]:
    """One provider call (a batch), timed into ``sms.provider.duration``."""
    started = time.perf_counter()
    try:
        if _off():
            yield
        else:
            with _span("sms.provider.send", "CLIENT", None, **{
                    "sms.comm_id": comm_id.hex, "sms.provider": provider, "sms.recipients": recipients}):
                yield
    finally:
        record(PROVIDER_DURATION, time.perf_counter() - started, provider)


@contextlib.contextmanager
def applying_receipt(provider: str, comm_id: uuid.UUID, status: str) -> Iterator[None]:
    """A receipt applied to the communication: in its trace, linked to the callback's HTTP request."""
    if _off():
        yield
        return
    with _span("sms.receipt", "CONSUMER", _root(comm_id), link_current=True, **{
            "sms.comm_id": comm_id.hex, "sms.provider": provider,
            "sms.receipt.status": re.sub(r"[^a-z_]", "", status.lower())[:32]}):
        yield


def traceparent() -> str | None:
    """The current span's W3C ``traceparent``, for a queue message to carry (None when off or outside a span)."""
    if _off():
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


# --- metrics --------------------------------------------------------------------------------------------------------

def count(outcome: str, provider: str | None, recipients: int = 1) -> None:
    """``recipients`` more in ``outcome`` (one of ``OUTCOMES``) for ``provider``."""
    if outcome not in OUTCOMES:
        raise ValueError(f"not an outcome: {outcome}")
    counter = _telemetry().messages
    if counter is not None and recipients > 0:
        counter.add(recipients, _checked({"sms.outcome": outcome, "sms.provider": provider}))


def record(histogram: str, seconds: float, provider: str | None = None) -> None:
    state = _telemetry()
    instrument = {PROVIDER_DURATION: state.provider_duration, QUEUE_AGE: state.queue_age,
                  QUEUE_WAITING: state.queue_waiting}[histogram]
    if instrument is not None:
        instrument.record(seconds, _checked({"sms.provider": provider}))
