"""The ACS provider through the real SDK against a local HTTPS ACS, and that fake's own strictness."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.communication.sms import SmsClient
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from fakes.acs import AcsFake, signed_headers
from fakes.server import Fault
from gateway.config import ConfigError
from gateway.providers.acs import (
    NO_CREDENTIAL,
    REPEATABILITY_WINDOW_SECONDS,
    AcsProvider,
    _identity,
    create,
    repeatability_for,
)
from gateway.providers.acs_settings import AcsSettings
from gateway.providers.base import OutboundSms, Outcome
from gateway.providers.common import CONNECT_FAILED, NOT_ATTEMPTED, TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
SENDER = "+18005550199"


@pytest.fixture
def acs() -> Iterator[AcsFake]:
    with AcsFake(bearer_tokens={"good-token"}) as running:
        yield running  # type: ignore[misc]


def settings_for(acs: AcsFake, **overrides: Any) -> AcsSettings:
    base = AcsSettings(connection_string=acs.connection_string, ca_bundle=acs.ca_bundle, timeout_seconds=3.0)
    return replace(base, **overrides)


def sms(
    to: str,
    *,
    comm: uuid.UUID | None = None,
    body: str = "Your code is 1234",
    sender: str = SENDER,
    first_attempt_at: datetime | None = None,
) -> OutboundSms:
    return OutboundSms(
        comm_id=comm or uuid.uuid4(),
        recipient_id=uuid.uuid4(),
        to=to,
        sender=sender,
        body=body,
        first_attempt_at=first_attempt_at,
    )


def sent_bodies(acs: AcsFake) -> list[dict[str, Any]]:
    return [json.loads(seen.body) for seen in acs.requests if seen.method == "POST"]


class StaticToken:
    """A TokenCredential standing in for a managed identity."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


class NoToken:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise ClientAuthenticationError("ManagedIdentityCredential: no response from the IMDS endpoint")


# --- happy path ------------------------------------------------------------------------------------------------


def test_one_call_per_communication_with_ids_fields_and_signature(acs: AcsFake) -> None:
    comm = uuid.uuid4()
    now = datetime.now(UTC)
    messages = [sms(f"+1425555010{n}", comm=comm, first_attempt_at=now) for n in range(3)]

    results = AcsProvider(settings_for(acs)).send(messages)

    assert [r.outcome for r in results] == [Outcome.ACCEPTED] * 3
    assert [r.recipient_id for r in results] == [m.recipient_id for m in messages]
    assert [r.provider_message_id for r in results] == [s.message_id for s in acs.sent]
    [request] = acs.requests
    assert request.auth_scheme == "HMAC-SHA256" and request.path == "/sms?api-version=2021-03-07"
    for message, sent in zip(messages, acs.sent, strict=True):
        assert (sent.from_, sent.to, sent.message) == (SENDER, message.to, message.body)
        assert sent.tag == comm.hex and sent.enable_delivery_report is True
        expected = repeatability_for(message, now)
        assert (sent.repeatability_request_id, sent.repeatability_first_sent) == (
            expected.request_id,
            expected.first_sent,
        )
        assert sent.repeatability_first_sent == format_datetime(now.replace(microsecond=0), usegmt=True)


def test_calls_split_by_communication_body_and_repeated_numbers(acs: AcsFake) -> None:
    comm_a, comm_b = uuid.uuid4(), uuid.uuid4()
    messages = [
        sms("+14255550100", comm=comm_a),
        sms("+14255550101", comm=comm_b),
        sms("+14255550102", comm=comm_a),
        sms("+14255550100", comm=comm_a),  # the same number twice in one communication
        sms("+14255550103", comm=comm_a, body="another text"),
    ]

    results = AcsProvider(settings_for(acs)).send(messages)

    assert [r.outcome for r in results] == [Outcome.ACCEPTED] * 5
    assert [r.recipient_id for r in results] == [m.recipient_id for m in messages]
    calls = [[r["to"] for r in body["smsRecipients"]] for body in sent_bodies(acs)]
    assert sorted(calls) == sorted(
        [["+14255550100", "+14255550102"], ["+14255550100"], ["+14255550101"], ["+14255550103"]]
    )
    for body in sent_bodies(acs):
        assert len({r["to"] for r in body["smsRecipients"]}) == len(body["smsRecipients"])
    by_recipient = {s.repeatability_request_id for s in acs.sent}
    assert len(by_recipient) == 5  # one id per (comm, recipient), even for the repeated number


def test_more_than_a_hundred_recipients_take_two_calls(acs: AcsFake) -> None:
    comm = uuid.uuid4()
    messages = [sms(f"+1425555{n:04d}", comm=comm) for n in range(101)]
    results = AcsProvider(settings_for(acs)).send(messages)
    assert all(r.outcome is Outcome.ACCEPTED for r in results)
    assert [len(body["smsRecipients"]) for body in sent_bodies(acs)] == [100, 1]


def test_managed_identity_path_sends_a_bearer_token_for_acs_scope(acs: AcsFake) -> None:
    credential = StaticToken("good-token")
    settings = AcsSettings(endpoint=acs.base_url, ca_bundle=acs.ca_bundle, timeout_seconds=3.0)
    [result] = AcsProvider(settings, credential=credential).send([sms("+14255550100")])

    assert result.outcome is Outcome.ACCEPTED
    assert acs.requests[0].auth_scheme == "Bearer"
    assert credential.scopes == [("https://communication.azure.com//.default",)]


# --- repeatability ------------------------------------------------------------------------------------------------


def test_repeatability_pair_is_stable_for_a_recipient_across_retries() -> None:
    first = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    message = sms("+14255550100", first_attempt_at=first)

    early = repeatability_for(message, first + timedelta(seconds=1))
    late = repeatability_for(message, first + timedelta(seconds=REPEATABILITY_WINDOW_SECONDS - 1))
    other = repeatability_for(replace(message, recipient_id=uuid.uuid4()), first + timedelta(seconds=1))

    assert early == late
    assert early.first_sent == "Sun, 01 Mar 2026 12:00:00 GMT"
    assert uuid.UUID(early.request_id).version == 5
    assert other.request_id != early.request_id


def test_repeatability_pair_moves_on_once_the_window_has_passed() -> None:
    first = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    message = sms("+14255550100", first_attempt_at=first)
    now = first + timedelta(seconds=REPEATABILITY_WINDOW_SECONDS)

    late = repeatability_for(message, now)

    assert late.first_sent == format_datetime(now, usegmt=True)
    assert late.request_id != repeatability_for(message, first).request_id
    # without a first attempt time there is nothing to keep: the pair is this attempt's
    assert repeatability_for(replace(message, first_attempt_at=None), now) == late
    # a naive first attempt time is taken as UTC
    naive = replace(message, first_attempt_at=first.replace(tzinfo=None))
    assert repeatability_for(naive, first) == repeatability_for(message, first)


def test_a_resend_after_a_lost_answer_is_deduplicated_by_acs(acs: AcsFake) -> None:
    first_attempt = datetime.now(UTC)
    message = sms("+14255550100", first_attempt_at=first_attempt)
    acs.push_fault(Fault(delay=1.0))  # ACS takes it, but answers after the client gave up
    provider = AcsProvider(settings_for(acs, timeout_seconds=0.3))

    [lost] = provider.send([message])
    deadline = time.monotonic() + 5
    while not acs.sent and time.monotonic() < deadline:
        time.sleep(0.05)
    [again] = provider.send([message])

    assert (lost.outcome, lost.error_code) == (Outcome.RETRY, TIMEOUT)
    assert again.outcome is Outcome.ACCEPTED
    assert len(acs.sent) == 1 and acs.dedupe_hits == 1
    assert again.provider_message_id == acs.sent[0].message_id
    ids = [body["smsRecipients"][0]["repeatabilityRequestId"] for body in sent_bodies(acs)]
    assert len(ids) == 2 and ids[0] == ids[1]


def test_the_sdk_alone_would_send_twice(acs: AcsFake) -> None:
    """Why the provider rewrites the repeatability pair: the SDK's own is random per call."""
    client = SmsClient.from_connection_string(acs.connection_string, connection_verify=acs.ca_bundle, retry_total=0)
    for _ in range(2):
        client.send(from_=SENDER, to=["+14255550100"], message="hello")
    assert len(acs.sent) == 2 and acs.dedupe_hits == 0


def test_an_old_first_attempt_goes_out_fresh_instead_of_being_refused(acs: AcsFake) -> None:
    message = sms("+14255550100", first_attempt_at=datetime.now(UTC) - timedelta(minutes=10))
    [result] = AcsProvider(settings_for(acs)).send([message])

    assert result.outcome is Outcome.ACCEPTED
    first_sent = datetime.strptime(acs.sent[0].repeatability_first_sent or "", "%a, %d %b %Y %H:%M:%S GMT")
    assert abs(first_sent.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(seconds=30)


def test_a_412_from_clocks_apart_is_retried(acs: AcsFake) -> None:
    # ACS's clock runs 6 minutes ahead of ours (still inside the 15 minutes allowed for x-ms-date): a first
    # attempt one minute ago by our clock is outside its 5-minute window, and it refuses rather than risk a repeat.
    acs.clock = lambda: datetime.now(UTC) + timedelta(minutes=6)
    message = sms("+14255550100", first_attempt_at=datetime.now(UTC) - timedelta(seconds=60))

    [result] = AcsProvider(settings_for(acs)).send([message])

    assert (result.outcome, result.error_code) == (Outcome.RETRY, "412")
    assert acs.sent == []


# --- per-recipient answers ------------------------------------------------------------------------------------------


def test_per_recipient_answers_map_to_outcomes(acs: AcsFake) -> None:
    acs.fail_recipient("+14255550111", 400, "Invalid To phone number format.")
    acs.fail_recipient("+14255550112", 429, "TooManyRequests")
    acs.fail_recipient("+14255550113", 503, "ServiceUnavailable")
    acs.fail_recipient("+14255550114", 403, "Sender not allowed for this destination")
    comm = uuid.uuid4()
    numbers = ["+14255550110", "+14255550111", "+14255550112", "+14255550113", "+14255550114", "12345"]

    results = AcsProvider(settings_for(acs)).send([sms(n, comm=comm) for n in numbers])

    assert [(r.outcome, r.error_code) for r in results] == [
        (Outcome.ACCEPTED, None),
        (Outcome.FAILED, "400"),
        (Outcome.RETRY, "429"),
        (Outcome.RETRY, "503"),
        (Outcome.FAILED, "403"),
        (Outcome.FAILED, "400"),
    ]
    assert results[1].error_message == "Invalid To phone number format."
    assert results[5].error_message == "Invalid To phone number format."
    assert [s.to for s in acs.sent] == ["+14255550110"]


# --- whole-call failures --------------------------------------------------------------------------------------------


def two_calls() -> list[OutboundSms]:
    return [sms("+14255550100"), sms("+14255550101"), sms("+14255550102")]  # three communications: three calls


def test_a_500_retries_that_call_and_the_batch_goes_on(acs: AcsFake) -> None:
    acs.push_fault(Fault(status=500))
    results = AcsProvider(settings_for(acs)).send(two_calls())
    assert [(r.outcome, r.error_code) for r in results] == [
        (Outcome.RETRY, "500"),
        (Outcome.ACCEPTED, None),
        (Outcome.ACCEPTED, None),
    ]


def test_429_retry_after_is_read_and_later_calls_wait(acs: AcsFake) -> None:
    acs.push_fault(Fault(status=429, retry_after="11"))
    results = AcsProvider(settings_for(acs)).send(two_calls())

    assert (results[0].outcome, results[0].error_code, results[0].retry_after_seconds) == (Outcome.RETRY, "429", 11.0)
    assert [(r.outcome, r.error_code, r.retry_after_seconds) for r in results[1:]] == [
        (Outcome.RETRY, NOT_ATTEMPTED, 11.0)
    ] * 2
    assert len(acs.requests) == 1 and acs.sent == []


def test_503_is_retry_for_every_recipient_of_the_call(acs: AcsFake) -> None:
    acs.push_fault(Fault(status=503, retry_after="3"))
    comm = uuid.uuid4()
    results = AcsProvider(settings_for(acs)).send([sms("+14255550100", comm=comm), sms("+14255550101", comm=comm)])
    assert [(r.outcome, r.error_code, r.retry_after_seconds) for r in results] == [(Outcome.RETRY, "503", 3.0)] * 2


def test_a_refused_body_fails_the_whole_call(acs: AcsFake) -> None:
    comm = uuid.uuid4()
    too_long = "x" * 2049  # over the service's 2048 characters
    results = AcsProvider(settings_for(acs)).send([sms("+14255550100", comm=comm, body=too_long)])
    assert [(r.outcome, r.error_code) for r in results] == [(Outcome.FAILED, "400")]
    assert "2048" in (results[0].error_message or "") or "long" in (results[0].error_message or "")


def test_a_wrong_access_key_fails_with_401_and_is_logged_loudly(acs: AcsFake, caplog: pytest.LogCaptureFixture) -> None:
    wrong = AcsFake().access_key
    settings = settings_for(acs, connection_string=f"endpoint={acs.base_url}/;accesskey={wrong}")
    with caplog.at_level(logging.DEBUG):
        results = AcsProvider(settings).send([sms("+14255550100")])

    assert [(r.outcome, r.error_code) for r in results] == [(Outcome.FAILED, "401")]
    assert any(r.levelno >= logging.ERROR and "credentials" in r.getMessage() for r in caplog.records)
    assert wrong not in caplog.text and acs.access_key not in caplog.text
    assert acs.sent == []


def test_a_wrong_bearer_token_fails_with_401(acs: AcsFake) -> None:
    settings = AcsSettings(endpoint=acs.base_url, ca_bundle=acs.ca_bundle, timeout_seconds=3.0)
    [result] = AcsProvider(settings, credential=StaticToken("stolen-token")).send([sms("+14255550100")])
    assert (result.outcome, result.error_code) == (Outcome.FAILED, "401")


def test_no_token_from_the_identity_is_retry(acs: AcsFake) -> None:
    settings = AcsSettings(endpoint=acs.base_url, ca_bundle=acs.ca_bundle, timeout_seconds=3.0)
    [result] = AcsProvider(settings, credential=NoToken()).send([sms("+14255550100")])  # type: ignore[arg-type]
    assert (result.outcome, result.error_code) == (Outcome.RETRY, NO_CREDENTIAL)
    assert acs.requests == []


def test_a_slow_acs_times_out_as_retry(acs: AcsFake) -> None:
    acs.push_fault(Fault(delay=1.5, status=500))
    started = time.monotonic()
    results = AcsProvider(settings_for(acs, timeout_seconds=0.3)).send(two_calls())

    assert (results[0].outcome, results[0].error_code) == (Outcome.RETRY, TIMEOUT)
    assert [r.error_code for r in results[1:]] == [NOT_ATTEMPTED] * 2
    assert time.monotonic() - started < 1.2


def test_connection_refused_is_retry(acs: AcsFake) -> None:
    provider = AcsProvider(settings_for(acs))
    assert provider.send([sms("+14255550100")])[0].outcome is Outcome.ACCEPTED
    acs.stop()
    results = provider.send(two_calls())
    assert [(r.outcome, r.error_code) for r in results] == [
        (Outcome.RETRY, CONNECT_FAILED),
        (Outcome.RETRY, NOT_ATTEMPTED),
        (Outcome.RETRY, NOT_ATTEMPTED),
    ]


def test_an_untrusted_certificate_never_reaches_the_service(acs: AcsFake) -> None:
    [result] = AcsProvider(settings_for(acs, ca_bundle=None)).send([sms("+14255550100")])
    assert (result.outcome, result.error_code) == (Outcome.RETRY, CONNECT_FAILED)
    assert acs.requests == []


def test_logs_never_show_whole_numbers(acs: AcsFake, caplog: pytest.LogCaptureFixture) -> None:
    acs.fail_recipient("+14255550177", 400, "Invalid To phone number format: +14255550177")
    with caplog.at_level(logging.DEBUG):
        AcsProvider(settings_for(acs)).send([sms("+14255550177"), sms("+14255550178")])
    assert "*******0177" in caplog.text
    assert "+14255550177" not in caplog.text and "4255550178" not in caplog.text


def test_provider_attributes_and_factory(acs: AcsFake) -> None:
    assert (AcsProvider.name, AcsProvider.max_batch_size) == ("acs", 100)
    assert AcsProvider.resend_is_safe is True
    assert AcsProvider.resend_window_seconds == 300
    assert isinstance(create(settings_for(acs)), AcsProvider)
    with pytest.raises(TypeError):
        create(object())  # type: ignore[arg-type]


def test_identity_choice() -> None:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    assert isinstance(_identity("00000000-0000-0000-0000-000000000001"), ManagedIdentityCredential)
    assert isinstance(_identity(None), DefaultAzureCredential)


def test_importing_the_acs_module_is_what_loads_the_sdk() -> None:
    code = "import sys, gateway.providers.acs\nprint('azure.communication.sms' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


# --- settings -----------------------------------------------------------------------------------------------------

KEY = "c2VjcmV0LWtleS1ieXRlcy0wMTIzNDU2Nzg5YWJjZGVm"
CONNECTION = f"endpoint=https://contoso.communication.azure.com/;accesskey={KEY}"


def test_settings_from_env() -> None:
    by_key = AcsSettings.from_env({"ACS_CONNECTION_STRING": CONNECTION})
    assert by_key.connection_string == CONNECTION and by_key.endpoint is None and by_key.timeout_seconds == 10
    by_identity = AcsSettings.from_env(
        {"ACS_ENDPOINT": "https://contoso.communication.azure.com/", "ACS_CLIENT_ID": "abc", "ACS_TIMEOUT_SECONDS": "4"}
    )
    assert by_identity.endpoint == "https://contoso.communication.azure.com"
    assert (by_identity.client_id, by_identity.timeout_seconds) == ("abc", 4.0)


def test_settings_ca_bundle_for_tests(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = AcsSettings.from_env({"ACS_CONNECTION_STRING": CONNECTION, "ACS_CA_BUNDLE": str(bundle)})
    assert settings.ca_bundle == str(bundle)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "ACS_CONNECTION_STRING"),
        ({"ACS_CONNECTION_STRING": CONNECTION, "ACS_ENDPOINT": "https://x.example"}, "ACS_CONNECTION_STRING"),
        ({"ACS_CONNECTION_STRING": "endpoint=https://x.example/"}, "ACS_CONNECTION_STRING"),
        ({"ACS_CONNECTION_STRING": "endpoint=https://x.example/;accesskey=not base64!"}, "ACS_CONNECTION_STRING"),
        ({"ACS_CONNECTION_STRING": f"endpoint=http://x.example/;accesskey={KEY}"}, "ACS_CONNECTION_STRING"),
        ({"ACS_CONNECTION_STRING": CONNECTION, "ACS_CLIENT_ID": "abc"}, "ACS_CLIENT_ID"),
        ({"ACS_ENDPOINT": "http://x.example"}, "ACS_ENDPOINT"),
        ({"ACS_ENDPOINT": "x.example"}, "ACS_ENDPOINT"),
        ({"ACS_ENDPOINT": "https://x.example", "ACS_TIMEOUT_SECONDS": "-1"}, "ACS_TIMEOUT_SECONDS"),
        ({"ACS_ENDPOINT": "https://x.example", "ACS_TIMEOUT_SECONDS": "999"}, "ACS_TIMEOUT_SECONDS"),
        ({"ACS_ENDPOINT": "https://x.example", "ACS_CA_BUNDLE": "/no/such/file.pem"}, "ACS_CA_BUNDLE"),
    ],
)
def test_settings_errors_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named) as raised:
        AcsSettings.from_env(env)
    assert KEY not in str(raised.value)


def test_settings_repr_hides_the_access_key() -> None:
    settings = AcsSettings.from_env({"ACS_CONNECTION_STRING": CONNECTION})
    assert KEY not in repr(settings) and "accesskey" not in repr(settings)


# --- the fake itself rejects what ACS rejects -----------------------------------------------------------------------


def valid_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "from": SENDER,
        "smsRecipients": [{"to": "+14255550100"}],
        "message": "hello",
        "smsSendOptions": {"enableDeliveryReport": True, "tag": "t"},
    }
    body.update(overrides)
    return body


def raw_send(
    acs: AcsFake,
    body: bytes | dict[str, Any],
    *,
    key: str | None = None,
    sign_body: bytes | None = None,
    date: datetime | None = None,
    headers: dict[str, str] | None = None,
    path: str = "/sms?api-version=2021-03-07",
) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    url = acs.base_url + path
    signed = signed_headers(key or acs.access_key, "POST", url, data if sign_body is None else sign_body, date=date)
    signed.update(headers or {})
    return requests.post(url, data=data, headers=signed, verify=acs.ca_bundle, timeout=5)


def assert_acs_error(response: requests.Response, status: int) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and isinstance(error["message"], str)


def test_fake_accepts_a_correctly_signed_raw_request(acs: AcsFake) -> None:
    response = raw_send(acs, valid_body())
    assert response.status_code == 202, response.text
    [item] = response.json()["value"]
    assert item["successful"] is True and item["httpStatusCode"] == 202 and item["to"] == "+14255550100"
    assert "repeatabilityResult" not in item  # none was asked for


def test_fake_refuses_a_signature_made_with_another_key(acs: AcsFake) -> None:
    assert_acs_error(raw_send(acs, valid_body(), key=AcsFake().access_key), 401)


def test_fake_refuses_a_tampered_body(acs: AcsFake) -> None:
    signed_for = json.dumps(valid_body()).encode()
    tampered = json.dumps(valid_body(message="send money to ...")).encode()
    assert_acs_error(raw_send(acs, tampered, sign_body=signed_for), 401)
    # nor does fixing the content hash help: the signature covers it
    with_hash = {"x-ms-content-sha256": signed_headers(acs.access_key, "POST", "https://h/sms", tampered)[
        "x-ms-content-sha256"
    ]}
    assert_acs_error(raw_send(acs, tampered, sign_body=signed_for, headers=with_hash), 401)
    assert acs.sent == []


def test_fake_refuses_stale_dates_and_missing_authorization(acs: AcsFake) -> None:
    assert_acs_error(raw_send(acs, valid_body(), date=datetime.now(UTC) - timedelta(minutes=20)), 401)
    url = acs.base_url + "/sms?api-version=2021-03-07"
    response = requests.post(url, json=valid_body(), verify=acs.ca_bundle, timeout=5)
    assert_acs_error(response, 401)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        valid_body(smsRecipients=[]),
        valid_body(smsRecipients=[{"to": f"+1425555{n:04d}"} for n in range(101)]),
        valid_body(message="x" * 2049),
        valid_body(smsSendOptions={"tag": "t"}),
        valid_body(smsRecipients=[{"phone": "+14255550100"}]),
        {key: value for key, value in valid_body().items() if key != "from"},
        {key: value for key, value in valid_body().items() if key != "message"},
    ],
)
def test_fake_refuses_malformed_bodies_with_400(acs: AcsFake, body: bytes | dict[str, Any]) -> None:
    assert_acs_error(raw_send(acs, body), 400)
    assert acs.sent == []


def test_fake_wants_json_an_api_version_and_the_sms_path(acs: AcsFake) -> None:
    assert_acs_error(raw_send(acs, valid_body(), headers={"Content-Type": "text/plain"}), 400)
    assert_acs_error(raw_send(acs, valid_body(), path="/sms"), 400)
    assert_acs_error(raw_send(acs, valid_body(), path="/sms?api-version=1999-01-01"), 400)
    assert_acs_error(raw_send(acs, valid_body(), path="/emails:send?api-version=2021-03-07"), 404)


def test_fake_deduplicates_by_repeatability_request_id(acs: AcsFake) -> None:
    first_sent = format_datetime(datetime.now(UTC), usegmt=True)
    recipient = {
        "to": "+14255550100",
        "repeatabilityRequestId": str(uuid.uuid4()),
        "repeatabilityFirstSent": first_sent,
    }
    one = raw_send(acs, valid_body(smsRecipients=[recipient])).json()["value"][0]
    two = raw_send(acs, valid_body(smsRecipients=[recipient])).json()["value"][0]
    changed = raw_send(acs, valid_body(smsRecipients=[recipient], message="other")).json()["value"][0]

    assert one["repeatabilityResult"] == "accepted" and one["successful"] is True
    assert two == one
    assert len(acs.sent) == 1 and acs.dedupe_hits == 1
    assert changed["repeatabilityResult"] == "rejected"
    assert (changed["httpStatusCode"], changed["successful"]) == (400, False)


@pytest.mark.parametrize(
    ("recipient", "status"),
    [
        ({"repeatabilityRequestId": "not-a-guid", "repeatabilityFirstSent": "Sun, 01 Mar 2026 12:00:00 GMT"}, 400),
        ({"repeatabilityRequestId": str(uuid.uuid4())}, 400),
        ({"repeatabilityRequestId": str(uuid.uuid4()), "repeatabilityFirstSent": "2026-03-01T12:00:00Z"}, 400),
        ({"repeatabilityRequestId": str(uuid.uuid4()), "repeatabilityFirstSent": "Sun, 01 Mar 2026 12:00:00 GMT"}, 412),
    ],
)
def test_fake_rejects_bad_or_expired_repeatability(acs: AcsFake, recipient: dict[str, str], status: int) -> None:
    response = raw_send(acs, valid_body(smsRecipients=[{"to": "+14255550100", **recipient}]))
    assert response.status_code == 202
    [item] = response.json()["value"]
    assert (item["repeatabilityResult"], item["httpStatusCode"], item["successful"]) == ("rejected", status, False)
    assert acs.sent == []


def test_fake_stops_listening(acs: AcsFake) -> None:
    acs.stop()
    with pytest.raises(requests.ConnectionError):
        raw_send(acs, valid_body())
