"""Tracing over the local host: ``python -m devhost`` with ``OTEL_TRACES_EXPORTER=console``, Azurite, and the Twilio
fake posting its signed status callbacks. One queued send's spans (the accept inside the HTTP request, the queue
run, the provider call, each receipt) share one trace, whose id is the CommId, and carry ``sms.comm_id``; no span
anywhere in the host's output holds the phone number or the body."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from fakes.twilio import CallbackPlan, TwilioFake
from gateway.runtime import Gateway
from tests.http_fixtures import LICENSEE
from tests.server import GatewayServer
from tests.twilio_host import twilio_env
from tests.waiting import wait_until

TOKEN = uuid.uuid4().hex[:12]
BODY = f"Your code is {TOKEN}"


@pytest.fixture(scope="module")
def env(storage_connection: str, twilio: TwilioFake, port: int) -> dict[str, str]:
    return twilio_env(storage_connection, twilio, port=port, OTEL_TRACES_EXPORTER="console",
                      OTEL_SERVICE_NAME="sms-gateway-test")


@pytest.fixture(scope="module")
def key(gateway: Gateway) -> str:
    return gateway.keys.create(LICENSEE, "tracing")[1]


def console_spans(text: str) -> list[dict]:
    """The spans the console exporter printed: JSON objects starting at a line's first column (one a log line
    written in the middle of it cut is skipped: the privacy check reads the whole output as text too)."""
    decoder, spans, index = json.JSONDecoder(), [], 0
    for match in re.finditer(r"^\{$", text, re.MULTILINE):
        if match.start() < index:
            continue
        try:
            span, index = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        spans.append(span)
    return spans


def test_one_sends_spans_share_its_trace_and_name_no_number(server: GatewayServer, key: str,
                                                              twilio: TwilioFake) -> None:
    twilio.callback_plan = CallbackPlan()
    n = uuid.uuid4().int
    to = f"+1415{2 + n % 8}{n // 8 % 10**6:06d}"
    answer = server.post("/api/sendmessage", {"SMSModel": {"To": [{"PhoneNumber": to}], "MessageBody": BODY}},
                         key=key)
    assert answer.status_code == 200, answer.text
    comm_id = answer.json()["CommId"]

    def delivered() -> list[dict] | None:
        spans = [s for s in console_spans(server.log_text()) if s["attributes"].get("sms.comm_id") == comm_id]
        receipts = [s for s in spans if s["name"] == "sms.receipt"]
        runs = [s for s in spans if s["name"] == "sms.deliver"]  # a span is printed when it ends: the run may end last
        return spans if len(receipts) >= 3 and runs else None  # Twilio's queued, sent and delivered callbacks

    twilio.wait_for_callbacks()
    spans = wait_until(delivered, timeout=30, what=f"the spans of comm {comm_id}")
    by_name = {s["name"]: s for s in spans}
    assert {"sms.accept", "sms.deliver", "sms.provider.send", "sms.receipt"} <= set(by_name)
    assert {s["context"]["trace_id"] for s in spans} == {f"0x{comm_id}"}
    assert by_name["sms.deliver"]["parent_id"] == by_name["sms.accept"]["context"]["span_id"]  # through the queue
    assert by_name["sms.provider.send"]["attributes"]["sms.provider"] == "twilio"
    assert by_name["sms.accept"]["resource"]["attributes"]["service.name"] == "sms-gateway-test"

    output = server.log_text()
    everything = json.dumps(console_spans(output))
    assert to not in everything and to[1:] not in everything and to[-10:] not in everything
    assert TOKEN not in everything and TOKEN not in output
