"""Tracing and metrics (``gateway.telemetry``) with in-memory exporters: one trace per communication, from its
accept through the queue message to the provider call and the receipt; ``sms.comm_id`` on every span; no phone
number or body in any span; the metrics by outcome and provider; nothing of OpenTelemetry loaded when off."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway import telemetry
from gateway.queue import decode_message, encode_message

NUMBER = "+447400123461"
BODY = "Your privacy code is 918273"
E164 = re.compile(r"\+?\d{7,15}")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use(provider)
    yield exporter
    telemetry.use(None)


@pytest.fixture
def metrics() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    telemetry.use(TracerProvider(), MeterProvider(metric_readers=[reader]))
    yield reader
    telemetry.use(None)


def journey(comm_id: uuid.UUID) -> None:
    """What the gateway does for one queued send: accept and queue, one run calling the provider, a receipt."""
    with telemetry.accepting(comm_id, started=telemetry.now_ns(), operation="send", recipients=1, immediate=False):
        message = encode_message(comm_id, 0, None, telemetry.traceparent())
    envelope = decode_message(message)
    with telemetry.delivering(comm_id, envelope.traceparent, attempt=1, unit=None, queue_age_seconds=0.5), \
            telemetry.calling_provider("twilio", comm_id, 1):
        pass
    with telemetry.applying_receipt("twilio", comm_id, "delivered"):
        pass


def test_one_communication_is_one_trace_whose_id_is_its_comm_id(spans: InMemorySpanExporter) -> None:
    comm_id = uuid.uuid4()
    journey(comm_id)
    finished = {span.name: span for span in spans.get_finished_spans()}
    assert set(finished) == {"sms.accept", "sms.deliver", "sms.provider.send", "sms.receipt"}
    assert {span.context.trace_id for span in finished.values()} == {comm_id.int}
    assert all(span.attributes["sms.comm_id"] == comm_id.hex for span in finished.values())
    # The queue message carried the accept's context: the run is its child, the provider call the run's.
    assert finished["sms.deliver"].parent.span_id == finished["sms.accept"].context.span_id
    assert finished["sms.provider.send"].parent.span_id == finished["sms.deliver"].context.span_id


def test_a_message_without_trace_context_still_joins_its_communications_trace(spans: InMemorySpanExporter) -> None:
    comm_id = uuid.uuid4()
    foreign = f"00-{uuid.uuid4().hex}-{'cd' * 8}-01"  # another trace's context: not trusted to name this one
    for carried in (None, foreign, "garbage"):
        with telemetry.delivering(comm_id, carried, attempt=1, unit=range(0, 50), queue_age_seconds=None):
            pass
    runs = spans.get_finished_spans()
    assert [span.context.trace_id for span in runs] == [comm_id.int] * 3
    assert runs[0].attributes["sms.unit"] == "0..49"


def test_no_phone_number_or_body_in_any_span_even_when_the_call_fails(spans: InMemorySpanExporter) -> None:
    comm_id = uuid.uuid4()
    with pytest.raises(RuntimeError), telemetry.accepting(
            comm_id, started=telemetry.now_ns(), operation="send", recipients=1, immediate=True), \
            telemetry.calling_provider("twilio", comm_id, 1):
        raise RuntimeError(f"could not send {BODY!r} to {NUMBER}")  # what a careless error message says
    journey(comm_id)
    exported = [json.loads(span.to_json()) for span in spans.get_finished_spans()]
    text = json.dumps(exported)
    assert BODY not in text and "918273" not in text and "7400123461" not in text
    for span in exported:
        for value in [*span["attributes"].values(), span["name"], *(json.dumps(e) for e in span["events"])]:
            assert not E164.search(str(value).replace(comm_id.hex, "")), (span["name"], value)
    failed = next(span for span in exported if span["name"] == "sms.provider.send" and span["status"]["description"])
    assert failed["status"]["description"] == "RuntimeError" and failed["attributes"]["error.type"] == "RuntimeError"


def test_a_span_refuses_an_attribute_it_does_not_list(spans: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError, match="not allowed"), telemetry._span("sms.accept", "INTERNAL", None,
                                                                         **{"sms.to": NUMBER}):
        pass


def test_the_metrics_count_outcomes_per_provider_and_time_calls_and_queue_age(
        metrics: InMemoryMetricReader) -> None:
    comm_id = uuid.uuid4()
    telemetry.count("accepted", "twilio", 3)
    telemetry.count("sent", "twilio", 2)
    telemetry.count("opted_out", "twilio")
    telemetry.count("delivered", "twilio")
    journey(comm_id)
    data = metrics.get_metrics_data()
    points = {metric.name: metric.data.data_points
              for resource in data.resource_metrics for scope in resource.scope_metrics for metric in scope.metrics}
    outcomes = {(dict(p.attributes)["sms.outcome"], dict(p.attributes)["sms.provider"]): p.value
                for p in points[telemetry.MESSAGES]}
    assert outcomes == {("accepted", "twilio"): 3, ("sent", "twilio"): 2, ("opted_out", "twilio"): 1,
                        ("delivered", "twilio"): 1}
    assert [p.count for p in points[telemetry.PROVIDER_DURATION]] == [1]
    assert [dict(p.attributes) for p in points[telemetry.PROVIDER_DURATION]] == [{"sms.provider": "twilio"}]
    assert [(p.count, p.max) for p in points[telemetry.QUEUE_AGE]] == [(1, 0.5)]
    with pytest.raises(ValueError):
        telemetry.count("lost", "twilio")


@pytest.mark.parametrize(("environ", "mode"), [
    ({}, None), ({"OTEL_TRACES_EXPORTER": "none"}, None), ({"OTEL_TRACES_EXPORTER": "console"}, "sdk"),
    ({"OTEL_METRICS_EXPORTER": "otlp"}, "sdk"), ({"APPLICATIONINSIGHTS_CONNECTION_STRING": " "}, None),
    ({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=0", "OTEL_TRACES_EXPORTER": "console"}, "azure"),
])
def test_the_environment_picks_the_exporter(environ: dict[str, str], mode: str | None) -> None:
    assert telemetry.enabled_by(environ) == mode


OFF = """
import sys, uuid
from gateway import telemetry
from gateway.queue import encode_message
comm_id = uuid.uuid4()
with telemetry.accepting(comm_id, started=telemetry.now_ns(), operation="send", recipients=1, immediate=False):
    message = encode_message(comm_id, 0, None, telemetry.traceparent())
telemetry.count("sent", "outbox")
with telemetry.delivering(comm_id, None, attempt=1, unit=None, queue_age_seconds=1.0):
    pass
loaded = sorted(name for name in sys.modules if name.startswith(("opentelemetry", "azure.monitor")))
print(loaded, "Trace" in message)
"""


def test_off_the_hooks_load_nothing_and_queue_messages_carry_nothing() -> None:
    env = {"PATH": "/usr/bin:/bin"}  # no connection string, no OTEL_* exporter
    done = subprocess.run([sys.executable, "-c", OFF], env=env, capture_output=True, text=True, check=True,
                          cwd=telemetry.__file__.rsplit("/gateway/", 1)[0])
    assert done.stdout.strip() == "[] False"


AZURE = """
import uuid
import requests
from azure.core.settings import settings
from gateway import telemetry
comm_id = uuid.uuid4()
with telemetry.accepting(comm_id, started=telemetry.now_ns(), operation="send", recipients=1, immediate=False):
    parent = telemetry.traceparent()
print(parent == f"00-{comm_id.hex}-" + parent[36:52] + "-01", hasattr(requests.Session.send, "__wrapped__"),
      settings.tracing_implementation())
"""


def test_with_a_connection_string_azure_monitor_keeps_every_trace_and_instruments_nothing_else() -> None:
    """The distro configured as the gateway does: sampled (not the distro's rate limit), the automatic
    instrumentations of requests and the Azure SDK off (their spans would carry numbers in URLs and filters)."""
    env = {"PATH": "/usr/bin:/bin", "APPLICATIONINSIGHTS_CONNECTION_STRING":
           "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/"}
    done = subprocess.run([sys.executable, "-c", AZURE], env=env, capture_output=True, text=True, check=True,
                          timeout=60, cwd=telemetry.__file__.rsplit("/gateway/", 1)[0])
    assert done.stdout.strip() == "True False None", done.stderr[-2000:]


def test_the_queue_age_reads_the_triggers_insertion_time_naive_or_aware() -> None:
    from datetime import UTC, datetime, timedelta

    from azure.functions.queue import QueueMessage

    from gateway.worker import _age

    aware = datetime.now(UTC) - timedelta(seconds=7)
    assert round(_age(QueueMessage(body=b"", insertion_time=aware))) == 7
    assert round(_age(QueueMessage(body=b"", insertion_time=aware.replace(tzinfo=None)))) == 7  # read as UTC
    assert _age(QueueMessage(body=b"")) is None
