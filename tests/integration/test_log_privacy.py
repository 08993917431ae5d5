"""No phone number, message body or API key in the host's log.

The gateway runs as users run it (``python -m devhost`` in a subprocess, logging at DEBUG), once with the
outbox provider and once with the Twilio fake. Known values travel every way a client can send them:
headers, the query string (``?api_key=``, DTO fields), JSON bodies, national and E.164 numbers, the queue
path, the immediate path, a refused request, a provider that quotes the number back in a rejection and
in a transient error. Then every line the host process wrote is searched for them.
"""

from __future__ import annotations

import re
import secrets
import urllib.parse
import uuid
from collections.abc import Iterator

import pytest

from fakes.server import Fault
from fakes.twilio import TwilioFake, error_body
from gateway.runtime import Gateway
from gateway.settings import Settings
from tests.http_fixtures import LICENSEE
from tests.server import GatewayServer, server_env
from tests.waiting import wait_until

NUMBER = "+447400123461"  # a valid UK mobile number
NATIONAL = "07400 123461"
REJECTED = "+447400123462"  # Twilio refuses it, quoting it back
SIGNIFICANT = {NUMBER: "7400123461", REJECTED: "7400123462"}  # in every format: E.164, national, digits only


def body_with(token: str) -> str:
    return f"Your privacy code is {token}"


def send(server: GatewayServer, route: str, key: str, model: dict, **query: str) -> dict:
    url = f"{route}?{urllib.parse.urlencode({'api_key': key, **query})}"
    response = server.post(url, {"SMSModel": model}, key=key)
    assert response.status_code == 200, response.text
    return response.json()


def wait_final(server: GatewayServer, key: str, comm_id: str) -> dict:
    def final() -> dict | None:
        status = server.get(f"/api/sms/{comm_id}?api_key={key}", key=key).json()
        return status if status["Status"] in {"Sent", "PartiallySent", "Failed"} else None

    return wait_until(final, timeout=30, what=f"comm {comm_id} to end")


def exercise(server: GatewayServer, key: str, token: str) -> None:
    """Every way in: header and query keys, JSON and query DTO fields, both paths, a refusal, a wrong key."""
    body = body_with(token)
    queued = send(server, "/api/sendmessage", key, {"To": [{"PhoneNumber": NUMBER}], "MessageBody": body})
    assert wait_final(server, key, queued["CommId"])["Status"] == "Sent"

    in_query = f"{{To:[{{PhoneNumber:{NATIONAL}}}],MessageBody:{body}}}"  # a DTO field in the query string, as JSV
    immediate = send(server, "/api/sendmessage/immediate", key, {}, SMSModel=in_query)
    assert immediate["Message"] == "Sent to 1 of 1 recipient; 0 failed; GSM-7, 1 segment"

    too_long = f"{{To:[{{PhoneNumber:{NUMBER}99999}}],MessageBody:{body}}}"
    refused = server.post(f"/api/sendmessage?api_key={key}&SMSModel={urllib.parse.quote(too_long)}", {}, key=key)
    assert refused.status_code == 400 and "PhoneNumber" in refused.text

    wrong_key = "sgk_" + secrets.token_urlsafe(32)
    assert server.get(f"/api/sms/{queued['CommId']}?api_key={wrong_key}", key=wrong_key).status_code == 401


def assert_clean(log: str, secrets_: list[str], numbers: list[str]) -> None:
    squeezed = re.sub(r"[\s().-]", "", log)  # "+44 7400 123461" and "07400-123461" leave the same digits
    for value in secrets_:
        assert value not in log, f"{value!r} is in the host log"
    for number in numbers:
        assert SIGNIFICANT[number] not in squeezed, f"{number} is in the host log"
    assert "3461" in log  # the last four digits are what the log keeps: the masking ran, not nothing


@pytest.fixture
def twilio() -> Iterator[TwilioFake]:
    with TwilioFake() as fake:
        yield fake  # type: ignore[misc]


def start(env: dict[str, str]) -> tuple[GatewayServer, str]:
    gateway = Gateway.create(Settings.from_env(env))
    gateway.ensure_resources()
    key = gateway.keys.create(LICENSEE, "privacy")[1]
    return GatewayServer.start(env, "--log-level", "DEBUG"), key


def test_the_outbox_host_logs_no_number_body_or_key(storage_connection: str) -> None:
    server, key = start(server_env(storage_connection, SMS_DEFAULT_REGION="GB"))
    token = uuid.uuid4().hex
    try:
        exercise(server, key, token)
    finally:
        server.stop()
    log = server.log_text()
    assert "OUTBOX (not sent)" in log  # the outbox still says what it would have sent
    assert_clean(log, [key, token], [NUMBER])


def test_the_twilio_host_logs_no_number_body_or_key(storage_connection: str, twilio: TwilioFake) -> None:
    twilio.reject(REJECTED, 21211, f"The 'To' number {REJECTED} is not a valid phone number.")
    env = server_env(storage_connection, SMS_DEFAULT_REGION="GB", SMS_PROVIDER="twilio", SMS_RETRY_BASE_SECONDS="0",
                     TWILIO_ACCOUNT_SID=twilio.account_sid, TWILIO_AUTH_TOKEN=twilio.auth_token,
                     TWILIO_BASE_URL=twilio.base_url)
    server, key = start(env)
    token = uuid.uuid4().hex
    try:
        exercise(server, key, token)
        # A transient error whose text quotes the number: the worker logs why it retries.
        twilio.push_fault(Fault(status=503, body=error_body(503, 20503, f"Service Unavailable for {NUMBER}")))
        queued = send(server, "/api/sendmessage", key, {"To": [{"PhoneNumber": NUMBER}],
                                                        "MessageBody": body_with(token)})
        assert wait_final(server, key, queued["CommId"])["Status"] == "Sent"
        failed = send(server, "/api/sendmessage/immediate", key, {"To": [{"PhoneNumber": REJECTED}],
                                                                  "MessageBody": body_with(token)})
        assert failed["Message"].startswith("Sent to 0 of 1 recipient; 1 failed")
    finally:
        server.stop()
    assert {message.to for message in twilio.messages} == {NUMBER}
    log = server.log_text()
    assert "twilio: HTTP 400 (code 21211)" in log and "attempt 2" in log  # both paths were logged
    assert_clean(log, [key, token, twilio.auth_token], [NUMBER, REJECTED])
