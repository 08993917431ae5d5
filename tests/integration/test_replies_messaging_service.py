"""Replies to messages sent through a Twilio Messaging Service, over real HTTP: the service picks the sending
number after the create, so the reply index is written from the status callback that names it (``From``), and a
reply to that number finds the communication. The communication's own sender is never the key."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator

import pytest

from devhost.azurite import free_port
from fakes.twilio import DEV_SENDER, TwilioFake
from gateway.reply_index import ReplyIndex
from gateway.runtime import Gateway
from gateway.settings import Settings
from tests.integration.test_inbound import INBOUND, number, status
from tests.server import GatewayServer, server_env

SERVICE_SID = "MG" + secrets.token_hex(16)
LICENSEE = uuid.UUID("c3c3c3c3-0000-4000-8000-000000000003")


@pytest.fixture(scope="module")
def twilio() -> Iterator[TwilioFake]:
    with TwilioFake() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def env(storage_connection: str, twilio: TwilioFake, port: int) -> dict[str, str]:
    return server_env(storage_connection, SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID=twilio.account_sid,
                      TWILIO_AUTH_TOKEN=twilio.auth_token, TWILIO_BASE_URL=twilio.base_url,
                      TWILIO_MESSAGING_SERVICE_SID=SERVICE_SID, SMS_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")


@pytest.fixture(scope="module")
def gateway(env: dict[str, str]) -> Gateway:
    gateway = Gateway.create(Settings.from_env(env))
    gateway.ensure_resources()
    return gateway


@pytest.fixture(scope="module")
def server(env: dict[str, str], gateway: Gateway, twilio: TwilioFake, port: int) -> Iterator[GatewayServer]:
    server = GatewayServer.start(env, port=port)
    twilio.inbound_url = f"{server.url}{INBOUND}"
    yield server
    server.stop()


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
