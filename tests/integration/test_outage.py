"""Storage goes away mid-run and comes back: the gateway answers 503 meanwhile, accepts nothing
half-way, recovers by itself, and everything accepted before the fault still ends, nobody sent twice.

A dedicated Azurite (not the session's: this test stops it) keeps its data in a directory, so a
restart on the same ports brings the same account back, as a real storage outage would. The
gateway is ``python -m devhost`` with its queue worker, as users run it, sending through
the Twilio fake.

One delivery is deliberately in flight when storage goes: the fake holds its request until
storage is down, answers 201, and the run cannot record that. Its queue message comes back only
after host.json's visibilityTimeout (30 s) if the host manages to hand it back, or after the host's
processing lease (10 minutes) if it cannot (storage is down), so the communication waits for the
sweep. The test runs the sweep function itself, in-process on the same storage, with its clock moved
past ``SMS_SWEEP_AFTER_SECONDS``: the code the timer runs, early (tests/integration/test_crash_recovery.py
waits for the real timer). The claim left by the cut-off run expires after ``SMS_CLAIM_TIMEOUT_SECONDS``
= 5 here (60 by default; it must outlast one Twilio call, twice ``TWILIO_TIMEOUT_SECONDS`` = 4); Twilio
cannot de-duplicate a resend, so the next run reconciles that recipient through Twilio's Messages
list, once Twilio has had a minute to settle the cut-off call: it finds the SMS the cut-off run sent
and records it Sent, rather than sending it again.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from devhost.azurite import Azurite
from fakes.server import Fault
from fakes.twilio import TwilioFake
from gateway import worker
from gateway.delivery import RECONCILE_AFTER_SECONDS
from gateway.runtime import Gateway, use_gateway
from gateway.settings import Settings
from gateway.storage import utcnow
from tests.samples import NUMBERS, send_body
from tests.server import GatewayServer
from tests.waiting import wait_until

LICENSEE = uuid.UUID("7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6")
FINAL = {"Sent", "PartiallySent", "Failed"}
PROMPT_SECONDS = 10  # every answer during the outage comes within this


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[list[Azurite]]:
    servers = [Azurite.start(location=tmp_path / "azurite")]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def twilio() -> Iterator[TwilioFake]:
    with TwilioFake() as fake:
        yield fake


def marked(marker: str, *numbers: str, references_now: bool = False) -> dict:
    body = send_body(*numbers, body=f"{marker} hello", Notes=marker)
    body["CreateCommunicationReferencesImmediately"] = references_now
    return body


def assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    status = response.json()["ResponseStatus"]
    assert status["ErrorCode"] == "ServiceUnavailable"
    assert set(status) >= {"ErrorCode", "Message", "Errors"}


def test_storage_outage_and_recovery(storage: list[Azurite], twilio: TwilioFake) -> None:
    azurite = storage[0]
    suffix = uuid.uuid4().hex[:10]
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "SMS_TABLE_PREFIX": f"O{suffix}",
        "SMS_QUEUE_NAME": f"o{suffix}",
        "SMS_WEBHOOK_QUEUE_NAME": f"ow{suffix}",
        "SMS_DEFAULT_SENDER": "+15005550006",
        "SMS_PROVIDER": "twilio",
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_BASE_URL": twilio.base_url,
        "SMS_CLAIM_TIMEOUT_SECONDS": "5",
        "TWILIO_TIMEOUT_SECONDS": "2",
        "SMS_SWEEP_SCHEDULE": "0 0 0 1 1 *",  # the test runs the sweep itself (see the module's docstring)
        "SMS_RECEIPT_CHECK_SCHEDULE": "0 0 0 1 1 *",
        "SMS_RETENTION_SCHEDULE": "0 0 0 1 1 *",
    }
    gateway = Gateway.create(Settings.from_env(env))
    gateway.ensure_resources()
    key = gateway.keys.create(LICENSEE, "outage")[1]
    server = GatewayServer.start(env)
    try:
        def status(comm_id: str) -> dict:
            answer = server.get(f"/api/sms/{comm_id}", key=key)
            assert answer.status_code == 200, answer.text
            return answer.json()

        # Before: sends accepted and delivered; then one whose provider call is in flight at the fault.
        accepted: dict[str, str] = {}
        for index, (route, count, references_now) in enumerate(
                [("/api/sendmessage/immediate", 2, False), ("/api/sendmessage", 1, False),
                 ("/api/send", 3, True), ("/api/sms/send", 2, False)]):
            response = server.post(route, marked(f"before-{index}", *NUMBERS[:count], references_now=references_now),
                                   key=key)
            assert response.status_code == 200, response.text
            accepted[response.json()["CommId"]] = f"before-{index}"
        wait_until(lambda: all(status(c)["Status"] == "Sent" for c in accepted), timeout=30, what="the first sends")

        twilio.push_fault(Fault(delay=1.5))  # holds the next provider call; it then goes through
        response = server.post("/api/sendmessage", marked("in-flight", NUMBERS[4]), key=key)
        assert response.status_code == 200, response.text
        in_flight = response.json()["CommId"]
        accepted[in_flight] = "in-flight"
        wait_until(lambda: status(in_flight)["Status"] == "Sending", timeout=30, what="the claim")  # call held

        azurite.stop()

        # During: prompt 503s in the error shape, health 503, and nothing half-accepted.
        refused: set[str] = set()
        many = [f"+4479111{n:05d}" for n in range(150)]
        for route, numbers, references_now in [("/api/sendmessage", NUMBERS[:2], False),
                                               ("/api/send/immediate", NUMBERS[:1], False),
                                               ("/api/sms/send", many, True),  # two transactions
                                               ("/api/sendmessage", NUMBERS[:3], True)]:
            marker = f"during-{uuid.uuid4().hex}"
            started = time.monotonic()
            response = server.post(route, marked(marker, *numbers, references_now=references_now), key=key)
            assert time.monotonic() - started < PROMPT_SECONDS
            assert_unavailable(response)
            assert response.headers.get("Retry-After")
            refused.add(marker)
        started = time.monotonic()
        assert_unavailable(server.get("/api/health"))
        assert time.monotonic() - started < PROMPT_SECONDS
        # The held call reached Twilio and was accepted; recording that fails while storage is down.
        wait_until(lambda: any(m.to == NUMBERS[4] for m in twilio.messages), timeout=10, what="the held call")
        time.sleep(1)

        storage[0] = azurite = azurite.restart()

        # After: the same gateway process recovers by itself.
        wait_until(lambda: server.get("/api/health").status_code == 200, timeout=30, what="health to recover")
        response = wait_until(lambda: (r := server.post("/api/sendmessage", marked("after", NUMBERS[0]),
                                                        key=key)).status_code == 200 and r, timeout=30,
                              what="sends to recover")
        accepted[response.json()["CommId"]] = "after"

        table = gateway.clients.tables.get_table_client(gateway.settings.communications_table)
        notes = {entity.get("Notes") for entity in table.query_entities("RowKey eq 'comm'")}
        assert not notes & refused, "a refused request left a communication behind"
        assert set(accepted.values()) <= notes

        others = [comm_id for comm_id in accepted if comm_id != in_flight]
        wait_until(lambda: all(status(c)["Status"] == "Sent" for c in others), timeout=30, what="the other sends")
        assert status(in_flight)["Status"] == "Sending"  # the run that had it died; its message is away

        use_gateway(gateway)
        try:
            assert worker.sweep(now=utcnow() + timedelta(seconds=gateway.settings.sweep_after_seconds + 1)) == 1
        finally:
            use_gateway(None)
        # The claim expires after 5 s; Twilio then gets a minute to settle the cut-off call before it is asked.
        settle = gateway.settings.claim_timeout_seconds + RECONCILE_AFTER_SECONDS
        wait_until(lambda: status(in_flight)["Status"] in FINAL, timeout=settle + 30, what="the in-flight send to end")
        ended = status(in_flight)
        # Its SMS did reach Twilio before the worker died: reconciliation finds it instead of resending.
        assert ended["Status"] == "Sent"
        assert [r["ProviderMessageId"][:2] for r in ended["Recipients"]] == ["SM"]

        sends = Counter((m.body.split()[0], m.to) for m in twilio.messages)
        assert max(sends.values()) == 1, "a recipient was sent twice"
        assert not {marker for marker, _ in sends} & refused
        assert sum(1 for marker, _ in sends if marker == "in-flight") == 1
    finally:
        server.stop()
