"""A crash leaves no message waiting for long: the worst cases docs/delivery.md works out, measured.

Two crash points, over real HTTP, with ``python -m devhost`` (queue worker and sweep timer on) on Azurite:

* **in flight**: a delivery holds a provider call (ACS has the SMS; its answer never comes) when the
  host is killed with SIGKILL. Its queue message stays hidden for the host's 10-minute lease, so the
  sweep must find it: once the communication has been quiet for ``SMS_SWEEP_AFTER_SECONDS`` it is queued
  again, the run waits out the dead worker's claim (``SMS_CLAIM_TIMEOUT_SECONDS``), then resends: ACS
  answers from its repeatability memory, so the phone gets the SMS once.
* **stored, never queued**: the queue refuses the message after the communication was written (the
  queue is gone for a moment); the send still answers 200, and the sweep queues it.

The bounds are sums of settings (docs/delivery.md, "How long a crash can leave a message waiting"):

    in flight       max(S + P, C + 1) + poll + call
    never queued    S + P + poll + call

S = ``SMS_SWEEP_AFTER_SECONDS``, P = the sweep's period (``SMS_SWEEP_SCHEDULE``), C =
``SMS_CLAIM_TIMEOUT_SECONDS``, poll = host.json's ``maxPollingInterval`` (2 s), call = one provider call
(twice its time-out). Defaults (60, 60, 60, 2, 20) give 142 s and 142 s. The bound scales with these
settings and nothing else, so the test shortens them (below) and checks the same formula, plus a few
seconds for storage round trips and, after a kill, for the host to start again.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from devhost.config import parse_timespan
from fakes.acs import AcsFake
from fakes.server import Fault
from fakes.twilio import TwilioFake
from gateway.runtime import Gateway
from gateway.settings import Settings
from tests.samples import NUMBERS, send_body
from tests.server import ROOT, GatewayServer, server_env
from tests.waiting import wait_until

LICENSEE = uuid.UUID("5b7a0c1e-2d3f-4a5b-8c6d-7e8f9a0b1c2d")
FINAL = {"Sent", "PartiallySent", "Failed"}
CLAIM, QUIET, PERIOD, TIMEOUT = 6, 2, 2, 2
SHORTENED = {
    "SMS_CLAIM_TIMEOUT_SECONDS": str(CLAIM),
    "SMS_SWEEP_AFTER_SECONDS": str(QUIET),
    "SMS_SWEEP_SCHEDULE": f"*/{PERIOD} * * * * *",
}
POLL = parse_timespan(json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]["maxPollingInterval"],
                      "maxPollingInterval")  # the longest an idle queue listener waits before it looks again
CALL = 2 * TIMEOUT  # a provider call: its connect time-out, then its read time-out
ROUND_TRIPS = 5  # storage reads and writes of the runs and sweeps on the way, on a shared test machine

IN_FLIGHT_BOUND = max(QUIET + PERIOD, CLAIM + 1) + POLL + CALL + ROUND_TRIPS
NEVER_QUEUED_BOUND = QUIET + PERIOD + POLL + CALL + ROUND_TRIPS


@pytest.fixture
def acs() -> Iterator[AcsFake]:
    with AcsFake() as fake:
        yield fake


@pytest.fixture
def twilio() -> Iterator[TwilioFake]:
    with TwilioFake() as fake:
        yield fake


def prepared(env: dict[str, str]) -> tuple[Gateway, str]:
    """The gateway's storage made ready (tables, queues) and an API key, as a deployment has them."""
    gateway = Gateway.create(Settings.from_env(env))
    gateway.ensure_resources()
    return gateway, gateway.keys.create(LICENSEE, "crash recovery")[1]


def status(server: GatewayServer, key: str, comm_id: str) -> dict:
    answer = server.get(f"/api/sms/{comm_id}", key=key)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_delivery_killed_mid_call_ends_within_the_bound_and_sends_nobody_twice(storage_connection: str,
                                                                                acs: AcsFake) -> None:
    env = server_env(storage_connection, SMS_PROVIDER="acs", ACS_CONNECTION_STRING=acs.connection_string,
                     ACS_CA_BUNDLE=acs.ca_bundle, ACS_TIMEOUT_SECONDS=str(TIMEOUT), **SHORTENED)
    _, key = prepared(env)
    server = GatewayServer.start(env)
    try:
        acs.push_fault(Fault(no_answer=True))  # ACS takes the SMS; its answer never comes back
        response = server.post("/api/sendmessage", send_body(*NUMBERS[:2]), key=key)
        assert response.status_code == 200, response.text
        comm_id = response.json()["CommId"]
        wait_until(lambda: len(acs.sent) == 2, timeout=30, what="the held call to reach ACS")

        server.kill()
        killed = time.monotonic()
        server = GatewayServer.start(env)
        restart = time.monotonic() - killed
        assert status(server, key, comm_id)["Status"] == "Sending"  # the dead worker's claim is still on it

        wait_until(lambda: status(server, key, comm_id)["Status"] in FINAL, timeout=IN_FLIGHT_BOUND + restart + 60,
                   what="the killed delivery to end")
        elapsed = time.monotonic() - killed
        ended = status(server, key, comm_id)
    finally:
        server.stop()

    print(f"\nin flight: final {elapsed:.1f} s after SIGKILL (host restart {restart:.1f} s); "
          f"bound {IN_FLIGHT_BOUND} s + restart")
    assert ended["Status"] == "Sent"
    assert {r["ProviderMessageId"] for r in ended["Recipients"]} == {sms.message_id for sms in acs.sent}
    assert max(Counter(sms.to for sms in acs.sent).values()) == 1, "a recipient was sent twice"
    assert acs.dedupe_hits == 2  # the resend was answered from ACS's repeatability memory
    assert elapsed <= IN_FLIGHT_BOUND + restart


def test_a_send_stored_but_never_queued_ends_within_the_bound(storage_connection: str, twilio: TwilioFake) -> None:
    env = server_env(storage_connection, SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID=twilio.account_sid,
                     TWILIO_AUTH_TOKEN=twilio.auth_token, TWILIO_BASE_URL=twilio.base_url,
                     TWILIO_TIMEOUT_SECONDS=str(TIMEOUT), **SHORTENED)
    gateway, key = prepared(env)
    server = GatewayServer.start(env)
    try:
        queue = gateway.clients.queue(gateway.settings.queue_name)
        queue.delete_queue()  # the enqueue after the table write fails
        response = server.post("/api/sendmessage", send_body(*NUMBERS[:2]), key=key)
        accepted = time.monotonic()
        assert response.status_code == 200, response.text
        queue.create_queue()
        comm_id = response.json()["CommId"]
        assert queue.peek_messages() == []  # stored, and the queue never heard of it

        wait_until(lambda: status(server, key, comm_id)["Status"] in FINAL, timeout=NEVER_QUEUED_BOUND + 60,
                   what="the unqueued send to end")
        elapsed = time.monotonic() - accepted
        ended = status(server, key, comm_id)
    finally:
        server.stop()

    print(f"\nnever queued: final {elapsed:.1f} s after the 200; bound {NEVER_QUEUED_BOUND} s")
    assert ended["Status"] == "Sent"
    assert sorted(m.to for m in twilio.messages) == sorted(NUMBERS[:2]), "a recipient was sent twice, or not at all"
    assert elapsed <= NEVER_QUEUED_BOUND
