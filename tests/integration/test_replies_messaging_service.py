"""Replies to messages sent through a Twilio Messaging Service, over real HTTP: the service picks the sending
number after the create, so the reply index is written from the status callback that names it (``From``), and a
reply to that number finds the communication. The communication's own sender is never the key."""

from __future__ import annotations

import secrets
import uuid

import pytest

from fakes.twilio import DEV_SENDER, TwilioFake
from gateway.reply_index import ReplyIndex
from gateway.runtime import Gateway
from tests.integration.test_inbound import INBOUND, number, status
from tests.server import GatewayServer
from tests.twilio_host import twilio_env

SERVICE_SID = "MG" + secrets.token_hex(16)
LICENSEE = uuid.UUID("c3c3c3c3-0000-4000-8000-000000000003")


@pytest.fixture(scope="module")
def env(storage_connection: str, twilio: TwilioFake, port: int) -> dict[str, str]:
    return twilio_env(storage_connection, twilio, port=port, TWILIO_MESSAGING_SERVICE_SID=SERVICE_SID)


@pytest.fixture(scope="module")
def server(server: GatewayServer, twilio: TwilioFake) -> GatewayServer:
    """The host, and the fake's inbound webhook pointed at it."""
    twilio.inbound_url = f"{server.url}{INBOUND}"
    return server


def test_a_reply_to_the_number_the_service_picked_finds_the_communication(
    server: GatewayServer, gateway: Gateway, twilio: TwilioFake
) -> None:
    key = gateway.keys.create(LICENSEE, "service")[1]
    named, patient = number(), number()  # the request names a sender; the service sends from its own pool
    answer = server.post("/api/sendmessage/immediate", {"SMSModel": {
        "From": {"PhoneNumber": named}, "To": [{"PhoneNumber": patient}], "MessageBody": "Reply YES to confirm",
        "ReplyIsAllowed": True}}, key=key)
    assert answer.status_code == 200, answer.text
    comm_id = answer.json()["CommId"]
    twilio.wait_for_callbacks()
    index = ReplyIndex(gateway.clients.tables, gateway.settings.reply_index_table)
    assert index.candidates(named, patient) == []  # the named sender never sent it: not a key
    [sent] = {(s.comm_id, s.index) for s in index.candidates(DEV_SENDER, patient)}
    assert sent == (uuid.UUID(comm_id), 0)

    assert twilio.text(patient, DEV_SENDER, "YES").answered == 200
    [reply] = status(server, key, comm_id)["Replies"]
    assert (reply["From"], reply["To"], reply["Body"]) == (patient, DEV_SENDER, "YES")
