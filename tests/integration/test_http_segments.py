"""Encoding, segments and smart encoding over real HTTP: the gateway as users run it (``python -m devhost``,
Azurite) sending through the Twilio fake, whose ``num_segments`` is counted by the fake's own reading of GSM 03.38.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.twilio import TwilioFake
from gateway.runtime import Gateway
from gateway.settings import Settings
from tests.http_fixtures import LICENSEE
from tests.integration.test_http_send import assert_error
from tests.samples import NUMBERS, send_body
from tests.server import GatewayServer, server_env
from tests.twilio_host import twilio_env

CYRILLIC = "\u0436"
EMOJI = "\U0001f600"
CURLY = "\u201cSee you at 10:30\u201d \u2014 it\u2019s booked\u2026"
PLAIN = '"See you at 10:30" - it\'s booked...'


@pytest.fixture(scope="module")
def env(storage_connection: str, twilio: TwilioFake) -> dict[str, str]:
    return twilio_env(storage_connection, twilio)


@pytest.fixture(scope="module")
def literal_host(storage_connection: str) -> Iterator[tuple[GatewayServer, str]]:
    """A gateway with SMS_SMART_ENCODING=false (and no queue workers: the body is decided at accept)."""
    env = server_env(storage_connection, SMS_SMART_ENCODING="false")
    gateway = Gateway.create(Settings.from_env(env))
    gateway.ensure_resources()
    server = GatewayServer.start(env, "--no-queues")
    yield server, gateway.keys.create(LICENSEE, "literal")[1]
    server.stop()


def send_now(server: GatewayServer, key: str, body: str, *numbers: str) -> tuple[dict, dict]:
    """An immediate send: its answer and its status."""
    answer = server.post("/api/sendmessage/immediate", send_body(*(numbers or NUMBERS[:2]), body=body), key=key)
    assert answer.status_code == 200, answer.text
    status = server.get(f"/api/sms/{answer.json()['CommId']}", key=key)
    assert status.status_code == 200, status.text
    return answer.json(), status.json()


@pytest.mark.parametrize(("body", "encoding", "segments"), [
    ("a" * 160, "GSM-7", 1),
    ("a" * 161, "GSM-7", 2),
    ("a" * 306, "GSM-7", 2),
    ("a" * 307, "GSM-7", 3),
    ("a" * 152 + "\u20ac" + "a" * 7, "GSM-7", 2),  # 161 septets; the escape pair starts the second part
    ("a" * 151 + "\u20ac" + "a" * 7, "GSM-7", 1),  # 160 septets
    (CYRILLIC * 70, "UCS-2", 1),
    (CYRILLIC * 71, "UCS-2", 2),
    (EMOJI * 35, "UCS-2", 1),
    (EMOJI * 36, "UCS-2", 2),
    ("a" * 159 + CYRILLIC, "UCS-2", 3),
])
def test_boundary_bodies_show_their_encoding_and_segments(server: GatewayServer, key: str, twilio: TwilioFake,
                                                          body: str, encoding: str, segments: int) -> None:
    answer, status = send_now(server, key, body)
    plural = "segment" if segments == 1 else "segments"
    assert answer["Message"] == f"Sent to 2 of 2 recipients; 0 failed; {encoding}, {segments} {plural} each"
    assert (status["Encoding"], status["Segments"], status["SmartEncoded"]) == (encoding, segments, False)
    assert status["MessageBody"] == body
    # Twilio's own count, from its create answer, on each recipient.
    assert [recipient["Segments"] for recipient in status["Recipients"]] == [segments, segments]
    assert [message.body for message in twilio.messages[-2:]] == [body, body]


def test_a_body_over_sms_max_segments_is_400_naming_the_body_and_nothing_is_sent(
    server: GatewayServer, key: str, twilio: TwilioFake
) -> None:
    sent_before = len(twilio.messages)
    refused = server.post("/api/sendmessage/immediate", send_body(body=CYRILLIC * 671), key=key)
    error = assert_error(refused, 400, "TooManySegments", "SMSModel.MessageBody")
    assert error["Message"] == ("'Message Body' must fit in 10 segments or fewer. It takes 11 in UCS-2 "
                                "(671 UTF-16 units).")
    assert_error(server.post("/api/sendmessage", send_body(body="x" * 1531), key=key), 400, "TooManySegments",
                 "SMSModel.MessageBody")
    assert len(twilio.messages) == sent_before
    answer, status = send_now(server, key, "x" * 1530, NUMBERS[0])  # 10 segments: the limit itself is sent
    assert answer["Message"].endswith("; GSM-7, 10 segments")
    assert status["Recipients"][0]["Segments"] == 10


def test_a_curly_quoted_body_is_sent_as_gsm7_and_shown_smart_encoded(server: GatewayServer, key: str,
                                                                   twilio: TwilioFake) -> None:
    answer, status = send_now(server, key, CURLY, NUMBERS[0])
    assert answer["Message"] == "Sent to 1 of 1 recipient; 0 failed; GSM-7, 1 segment"
    assert (status["MessageBody"], status["Encoding"], status["Segments"], status["SmartEncoded"]) == (
        PLAIN, "GSM-7", 1, True)
    assert twilio.messages[-1].body == PLAIN  # what the phone gets is what the status shows


def test_a_body_that_needs_ucs2_anyway_is_sent_as_written(server: GatewayServer, key: str) -> None:
    body = CURLY + " " + CYRILLIC
    _, status = send_now(server, key, body, NUMBERS[0])
    assert (status["MessageBody"], status["Encoding"], status["SmartEncoded"]) == (body, "UCS-2", False)


def test_with_smart_encoding_off_a_curly_quoted_body_stays_ucs2(literal_host: tuple[GatewayServer, str]) -> None:
    server, key = literal_host
    answer = server.post("/api/sendmessage", send_body(body=CURLY), key=key)
    assert answer.status_code == 200, answer.text
    assert answer.json()["Message"] == "Queued for delivery to 1 recipient; UCS-2, 1 segment"
    status = server.get(f"/api/sms/{answer.json()['CommId']}", key=key).json()
    assert (status["MessageBody"], status["Encoding"], status["Segments"], status["SmartEncoded"]) == (
        CURLY, "UCS-2", 1, False)
