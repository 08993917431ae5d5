"""Issue 15's promise, over real HTTP on the local host: a licensee registers its URL with ``PUT /api/webhook``,
sends an SMS through the Twilio fake, and receives ``message.sent``, ``message.delivered`` (from Twilio's signed
status callback) and ``communication.completed``, each verified by the Standard Webhooks library and carrying the
send's ``LinkedObjectId``; a 500 brings the same event again; another licensee receives none of them.

Everything is the real pipeline: the send's delivery publishes through the outbox, the host's ``webhooks`` queue
function signs and posts, the receiver (``tests/webhook_receiver.py``) verifies every request it gets.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from fakes.twilio import TwilioFake
from gateway.runtime import Gateway
from tests.server import GatewayServer
from tests.twilio_host import twilio_env
from tests.waiting import wait_until
from tests.webhook_receiver import Answer, Received, WebhookReceiver

A = uuid.UUID("a5a5a5a5-0000-4000-8000-000000000015")
B = uuid.UUID("b5b5b5b5-0000-4000-8000-000000000015")
JOURNEY = {"message.sent", "message.delivered", "communication.completed"}


@pytest.fixture(scope="module")
def env(storage_connection: str, twilio: TwilioFake, port: int) -> dict[str, str]:
    # The receiver listens on loopback: allowed here as on a developer's machine, never by default.
    return twilio_env(storage_connection, twilio, port=port, SMS_WEBHOOK_ALLOW_PRIVATE="true",
                      SMS_WEBHOOK_RETRY_BASE_SECONDS="1")


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def keys(gateway: Gateway) -> dict[uuid.UUID, str]:
    return {licensee: gateway.keys.create(licensee, "webhooks end to end")[1] for licensee in (A, B)}


def register(server: GatewayServer, receiver: WebhookReceiver, key: str) -> str:
    """PUT /api/webhook with a new receiver path; the receiver learns the secret the answer shows once."""
    path = f"/hooks/{uuid.uuid4().hex}"
    answer = requests.put(f"{server.url}/api/webhook", json={"Url": receiver.endpoint(path)},
                          headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    registration = answer.json()
    assert registration["Url"] == receiver.endpoint(path) and registration["Secret"].startswith("whsec_")
    receiver.trust(path, registration["Secret"])
    return path


def send(server: GatewayServer, key: str, linked: uuid.UUID) -> str:
    """An immediate send through the Twilio fake, tied to ``linked`` in the caller's system; its CommId."""
    n = uuid.uuid4().int
    model = {"From": {"PhoneNumber": "+15005550006"}, "To": [{"PhoneNumber": f"+1415{2 + n % 8}{n // 8 % 10**6:06d}"}],
             "MessageBody": "Your order has shipped", "LinkedObjectId": linked.hex, "SuiteId": uuid.uuid4().hex,
             "Notes": "order 17"}
    answer = server.post("/api/sendmessage/immediate", {"SMSModel": model}, key=key)
    assert answer.status_code == 200, answer.text
    return answer.json()["CommId"]


def journey(receiver: WebhookReceiver, path: str, comm_id: str) -> list[Received]:
    return [each for each in receiver.at(path) if each.body["data"]["CommId"] == comm_id]


def test_a_send_through_twilio_tells_the_licensee_sent_delivered_and_completed_verified_and_retried(
    server: GatewayServer, receiver: WebhookReceiver, keys: dict[uuid.UUID, str], twilio: TwilioFake
) -> None:
    mine, theirs = register(server, receiver, keys[A]), register(server, receiver, keys[B])
    receiver.script(mine, Answer(500))  # the first event A's endpoint sees fails once
    linked = uuid.uuid4()
    comm_id = send(server, keys[A], linked)

    def complete() -> list[Received] | None:
        seen = journey(receiver, mine, comm_id)
        retried = len(seen) > 1 and any(e.webhook_id == seen[0].webhook_id for e in seen[1:])
        return seen if retried and {e.body["type"] for e in seen} >= JOURNEY else None

    got = wait_until(complete, timeout=60, what="sent, delivered and completed, and the 500's event again")
    assert receiver.unverified == []  # every request the receiver got verified with the secret PUT showed
    by_id: dict[str, list[Received]] = {}
    for each in got:
        by_id.setdefault(each.webhook_id, []).append(each)
    assert {bodies[0].body["type"] for bodies in by_id.values()} == JOURNEY  # one event per change
    first = got[0]
    assert len(by_id[first.webhook_id]) == 2, "the event answered 500 comes again"
    again = by_id[first.webhook_id][1]
    assert again.body == first.body
    assert int(again.headers["webhook-timestamp"]) >= int(first.headers["webhook-timestamp"])
    for each in got:
        data: dict[str, Any] = each.body["data"]
        assert (data["CommId"], data["LinkedObjectId"], data["Notes"]) == (comm_id, linked.hex, "order 17")
    delivered = next(e for e in got if e.body["type"] == "message.delivered")
    assert delivered.body["data"]["Status"] == "Delivered"

    # B registered too and sent nothing: it was told nothing of A's.
    assert receiver.at(theirs) == []
    their_comm = send(server, keys[B], uuid.uuid4())
    wait_until(lambda: {e.body["type"] for e in journey(receiver, theirs, their_comm)} >= JOURNEY, timeout=60,
               what="B's own events")
    assert {e.body["data"]["CommId"] for e in receiver.at(theirs)} == {their_comm}
    assert their_comm not in {e.body["data"]["CommId"] for e in receiver.at(mine)}
