"""The Twilio provider against a local Twilio that speaks the real wire, and that fake's own strictness."""

from __future__ import annotations

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

import pytest
import requests

from fakes.server import Fault
from fakes.twilio import MAGIC_NUMBERS, Fate, TwilioFake
from gateway.config import ConfigError
from gateway.providers.base import OutboundSms, Outcome, ReceiptSource
from gateway.providers.common import CONNECT_FAILED, NOT_ATTEMPTED, OUT_OF_TIME, TIMEOUT
from gateway.providers.twilio import QUEUE_FULL_RETRY_SECONDS, TwilioProvider, create
from gateway.providers.twilio_settings import TwilioSettings
from gateway.receipts import ReceiptState
from gateway.segments import count_segments

ROOT = Path(__file__).resolve().parents[2]
SENDER = "+15017122661"
SERVICE_SID = "MG" + "1" * 32


@pytest.fixture
def fake() -> Iterator[TwilioFake]:
    with TwilioFake() as running:
        yield running  # type: ignore[misc]


def settings_for(fake: TwilioFake, **overrides: object) -> TwilioSettings:
    base = TwilioSettings(
        account_sid=fake.account_sid, auth_token=fake.auth_token, base_url=fake.base_url, timeout_seconds=2.0
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def sms(to: str, body: str = "Your code is 1234", sender: str = SENDER) -> OutboundSms:
    return OutboundSms(comm_id=uuid.uuid4(), recipient_id=uuid.uuid4(), to=to, sender=sender, body=body)


# --- happy path ------------------------------------------------------------------------------------------------


def test_accepted_messages_carry_twilio_sids_and_the_right_fields(fake: TwilioFake) -> None:
    provider = create(settings_for(fake), concurrency=1)  # one at a time: the fake's list is in the batch's order
    messages = [sms("+14155550100"), sms("+14155550101", body="Hello 👋 — ünïcode"), sms("+447700900123")]

    results = provider.send(messages)

    assert [r.outcome for r in results] == [Outcome.ACCEPTED] * 3
    assert [r.recipient_id for r in results] == [m.recipient_id for m in messages]
    assert [r.provider_message_id for r in results] == [m.sid for m in fake.messages]
    for message, received in zip(messages, fake.messages, strict=True):
        assert received.sid.startswith("SM") and len(received.sid) == 34
        assert (received.to, received.from_, received.body) == (message.to, SENDER, message.body)
        assert received.messaging_service_sid is None and received.status_callback is None
        assert received.auth_user == fake.account_sid
    assert {r.content_type for r in fake.requests} == {"application/x-www-form-urlencoded"}


def test_twilios_segment_count_is_the_results_and_agrees_with_the_gateways(fake: TwilioFake) -> None:
    bodies = ["a" * 160, "a" * 161, "a" * 152 + "\u20ac" + "a" * 10, "\u0436" * 71, "\U0001f600" * 36]
    results = create(settings_for(fake), concurrency=1).send([sms("+14155550100", body=body) for body in bodies])

    assert [r.segments for r in results] == [1, 2, 2, 2, 2]
    assert [r.segments for r in results] == [count_segments(body).segments for body in bodies]


def test_no_segment_count_while_a_messaging_service_has_not_picked_a_sender(fake: TwilioFake) -> None:
    [result] = TwilioProvider(settings_for(fake, messaging_service_sid=SERVICE_SID)).send([sms("+14155550100")])
    assert result.outcome is Outcome.ACCEPTED and result.segments is None  # Twilio answers num_segments "0"


def test_api_key_authenticates_while_the_url_keeps_the_account_sid(fake: TwilioFake) -> None:
    settings = settings_for(fake, auth_token=None, api_key_sid=fake.api_key_sid, api_key_secret=fake.api_key_secret)
    [result] = TwilioProvider(settings).send([sms("+14155550100")])

    assert result.outcome is Outcome.ACCEPTED
    assert fake.messages[0].auth_user == fake.api_key_sid
    assert fake.requests[0].path == f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"


def test_messaging_service_replaces_from_and_status_callback_is_sent(fake: TwilioFake) -> None:
    settings = settings_for(
        fake, messaging_service_sid=SERVICE_SID, status_callback_url="http://127.0.0.1:9/twilio/status"
    )
    [result] = TwilioProvider(settings).send([sms("+14155550100")])

    assert result.outcome is Outcome.ACCEPTED
    [received] = fake.messages
    assert received.messaging_service_sid == SERVICE_SID
    assert received.from_ is None and "From" not in received.params
    assert received.status_callback == "http://127.0.0.1:9/twilio/status"


def test_a_full_batch_is_one_request_per_recipient_over_a_pooled_session(fake: TwilioFake) -> None:
    provider = TwilioProvider(settings_for(fake))
    messages = [sms(f"+1415555{n:04d}") for n in range(provider.max_batch_size)]

    results = provider.send(messages)

    assert all(r.outcome is Outcome.ACCEPTED for r in results)
    assert len(fake.messages) == len(messages) == 100
    assert len({r.provider_message_id for r in results}) == 100


# --- per-message failures -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", sorted(MAGIC_NUMBERS))
def test_twilio_rejections_fail_with_twilios_code_and_message(fake: TwilioFake, number: str) -> None:
    code, message = MAGIC_NUMBERS[number]
    good_before, bad, good_after = sms("+14155550100"), sms(number), sms("+14155550101")

    results = TwilioProvider(settings_for(fake)).send([good_before, bad, good_after])

    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.FAILED, Outcome.ACCEPTED]
    assert results[1].error_code == str(code)
    assert results[1].error_message == message
    assert results[1].provider_message_id is None
    assert [m.to for m in fake.messages] == [good_before.to, good_after.to]


def test_a_number_twilio_cannot_parse_is_21211(fake: TwilioFake) -> None:
    [result] = TwilioProvider(settings_for(fake)).send([sms("0412 345 678")])
    assert (result.outcome, result.error_code) == (Outcome.FAILED, "21211")


def test_a_scripted_rejection_keeps_its_status_code_and_text(fake: TwilioFake) -> None:
    fake.reject("+14155550123", 21612, "The 'To' phone number is not currently reachable")
    [result] = TwilioProvider(settings_for(fake)).send([sms("+14155550123")])
    assert (result.outcome, result.error_code) == (Outcome.FAILED, "21612")


def test_a_rejection_can_be_lifted(fake: TwilioFake) -> None:
    fake.reject("+14155550124", 21211, "The 'To' number +14155550124 is not a valid phone number.")
    fake.stop_rejecting("+14155550124")
    [result] = TwilioProvider(settings_for(fake)).send([sms("+14155550124")])
    assert result.outcome is Outcome.ACCEPTED


def test_bad_credentials_fail_with_20003_and_are_logged_loudly(
    fake: TwilioFake, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "not-the-token-" + uuid.uuid4().hex
    provider = TwilioProvider(settings_for(fake, auth_token=secret))
    with caplog.at_level(logging.DEBUG):
        results = provider.send([sms("+14155550100"), sms("+14155550101")])

    assert [(r.outcome, r.error_code) for r in results] == [(Outcome.FAILED, "20003")] * 2
    assert results[0].error_message == "Authenticate"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and "credentials" in errors[0].getMessage()
    assert secret not in caplog.text
    assert fake.messages == []


# --- transient failures -------------------------------------------------------------------------------------------


def test_a_500_is_retried_for_that_message_and_the_batch_goes_on(fake: TwilioFake) -> None:
    fake.push_fault(Fault(status=500))
    results = TwilioProvider(settings_for(fake)).send([sms("+14155550100"), sms("+14155550101")])

    assert (results[0].outcome, results[0].error_code) == (Outcome.RETRY, "20500")
    assert results[1].outcome is Outcome.ACCEPTED
    assert len(fake.messages) == 1


def test_429_retry_after_is_read_and_the_rest_of_the_batch_waits(fake: TwilioFake) -> None:
    fake.push_fault(Fault(status=429, retry_after="7"))
    results = TwilioProvider(settings_for(fake)).send([sms("+14155550100"), sms("+14155550101"), sms("+1415555102")])

    assert (results[0].outcome, results[0].error_code, results[0].retry_after_seconds) == (Outcome.RETRY, "20429", 7.0)
    assert [(r.outcome, r.error_code, r.retry_after_seconds) for r in results[1:]] == [
        (Outcome.RETRY, NOT_ATTEMPTED, 7.0)
    ] * 2
    assert len(fake.requests) == 1 and fake.messages == []


def test_a_full_sender_queue_21611_is_retried_later_and_halts_the_batch(fake: TwilioFake) -> None:
    fake.reject("+14155550100", 21611, "This 'From' number has exceeded the maximum number of queued messages")
    results = TwilioProvider(settings_for(fake)).send([sms("+14155550100"), sms("+14155550101")])

    assert (results[0].outcome, results[0].error_code, results[0].retry_after_seconds) == (
        Outcome.RETRY, "21611", QUEUE_FULL_RETRY_SECONDS)
    assert (results[1].outcome, results[1].error_code) == (Outcome.RETRY, NOT_ATTEMPTED)
    assert len(fake.requests) == 1 and fake.messages == []


def test_503_with_an_http_date_retry_after(fake: TwilioFake) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    fake.push_fault(Fault(status=503, retry_after=later))
    [result] = TwilioProvider(settings_for(fake)).send([sms("+14155550100")])

    assert (result.outcome, result.error_code) == (Outcome.RETRY, "20503")
    assert result.retry_after_seconds is not None and 80 <= result.retry_after_seconds <= 90


def test_a_retry_without_retry_after_leaves_the_wait_to_delivery(fake: TwilioFake) -> None:
    fake.push_fault(Fault(status=502, body="<html>Bad gateway</html>"))
    [result] = TwilioProvider(settings_for(fake)).send([sms("+14155550100")])
    assert (result.outcome, result.error_code, result.retry_after_seconds) == (Outcome.RETRY, "502", None)


def test_a_slow_twilio_times_out_as_retry_and_may_still_have_sent(fake: TwilioFake) -> None:
    fake.push_fault(Fault(delay=1.5))
    provider = TwilioProvider(settings_for(fake, timeout_seconds=0.3))

    started = time.monotonic()
    results = provider.send([sms("+14155550100"), sms("+14155550101")])
    elapsed = time.monotonic() - started

    assert (results[0].outcome, results[0].error_code) == (Outcome.RETRY, TIMEOUT)
    assert (results[1].outcome, results[1].error_code) == (Outcome.RETRY, NOT_ATTEMPTED)
    assert elapsed < 1.2
    # The fake goes on and creates the message: why a Twilio resend after a time-out is not safe.
    deadline = time.monotonic() + 5
    while not fake.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [m.to for m in fake.messages] == ["+14155550100"]
    assert provider.resend_is_safe is False


def test_connection_refused_is_retry_and_certainly_not_sent(fake: TwilioFake) -> None:
    provider = TwilioProvider(settings_for(fake))
    assert provider.send([sms("+14155550100")])[0].outcome is Outcome.ACCEPTED  # leaves a pooled connection
    fake.stop()

    results = provider.send([sms("+14155550101"), sms("+14155550102")])

    assert [(r.outcome, r.error_code) for r in results] == [
        (Outcome.RETRY, CONNECT_FAILED),
        (Outcome.RETRY, NOT_ATTEMPTED),
    ]


def test_logs_never_show_whole_numbers_or_secrets(fake: TwilioFake, caplog: pytest.LogCaptureFixture) -> None:
    fake.push_fault(Fault(status=500))
    numbers = ["+14155550177", "+15005550001", "+14155550178"]
    with caplog.at_level(logging.DEBUG):
        TwilioProvider(settings_for(fake)).send([sms(n) for n in numbers])
        TwilioProvider(settings_for(fake, auth_token="wrong-" + fake.auth_token)).send([sms("+14155550179")])

    assert caplog.records
    for number in [*numbers, "+14155550179"]:
        assert number not in caplog.text and number[1:] not in caplog.text
    assert fake.auth_token not in caplog.text
    assert "*******0177" in caplog.text


def test_provider_attributes() -> None:
    assert (TwilioProvider.name, TwilioProvider.max_batch_size) == ("twilio", 100)
    assert TwilioProvider.resend_is_safe is False
    assert TwilioProvider.resend_window_seconds == 0


def test_create_wants_twilio_settings() -> None:
    with pytest.raises(TypeError):
        create(object())  # type: ignore[arg-type]


def test_no_call_starts_that_could_outlast_the_batchs_claim(fake: TwilioFake) -> None:
    """A call takes up to twice the time-out (connect, then read); one that could end past the deadline waits."""
    provider = TwilioProvider(settings_for(fake, timeout_seconds=0.5))
    fake.push_fault(Fault(delay=0.4))  # the first call takes 0.4 s; the second could then run past the deadline
    deadline = time.monotonic() + 1.2  # room for one call of up to 1 s, not two
    results = provider.send([sms("+14155550100"), sms("+14155550101"), sms("+14155550102")], deadline=deadline)

    assert [(r.outcome, r.error_code) for r in results] == [
        (Outcome.ACCEPTED, None), (Outcome.RETRY, OUT_OF_TIME), (Outcome.RETRY, OUT_OF_TIME)]
    assert "claim would have expired" in results[1].error_message
    assert [m.to for m in fake.messages] == ["+14155550100"]


def test_a_deadline_already_too_close_sends_nothing(fake: TwilioFake) -> None:
    results = TwilioProvider(settings_for(fake)).send([sms("+14155550100")], deadline=time.monotonic() + 3.9)
    assert [(r.outcome, r.error_code) for r in results] == [(Outcome.RETRY, OUT_OF_TIME)]  # a call may take 4 s
    assert fake.requests == []


# --- status callbacks and look-ups -------------------------------------------------------------------------------

PUBLIC = "http://127.0.0.1:9"  # nothing listens there: the fake's callbacks fail, logged, as Twilio's would


def test_with_a_public_base_url_each_create_names_the_callback_route_with_its_row(fake: TwilioFake) -> None:
    provider = create(settings_for(fake), concurrency=1, public_base_url=PUBLIC)
    first, second = sms("+14155550100"), sms("+14155550101")
    messages = [replace(first, index=0), replace(second, index=4)]

    provider.send(messages)

    assert [m.status_callback for m in fake.messages] == [
        f"{PUBLIC}/api/providers/twilio/status?CommId={m.comm_id.hex}&Index={m.index}" for m in messages]


def test_without_a_public_base_url_no_callback_is_asked_for(fake: TwilioFake) -> None:
    create(settings_for(fake)).send([sms("+14155550100")])
    assert fake.messages[0].status_callback is None and "StatusCallback" not in fake.messages[0].params


def test_an_explicit_status_callback_url_wins(fake: TwilioFake) -> None:
    explicit = "http://127.0.0.1:9/my/own/receiver"
    create(settings_for(fake, status_callback_url=explicit), public_base_url=PUBLIC).send([sms("+14155550100")])
    assert fake.messages[0].status_callback == explicit


def test_without_the_auth_token_no_callback_is_asked_for_and_start_up_warns(
    fake: TwilioFake, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(fake, auth_token=None, api_key_sid=fake.api_key_sid, api_key_secret=fake.api_key_secret)
    with caplog.at_level(logging.WARNING, logger="gateway.providers.twilio"):
        provider = create(settings, public_base_url=PUBLIC)
    assert "TWILIO_AUTH_TOKEN is not" in caplog.text and "403" in caplog.text
    provider.send([sms("+14155550100")])
    assert fake.messages[0].status_callback is None
    assert fake.messages[0].auth_user == fake.api_key_sid


def test_the_api_key_pair_signs_rest_calls_while_the_token_asks_for_callbacks(fake: TwilioFake) -> None:
    settings = settings_for(fake, api_key_sid=fake.api_key_sid, api_key_secret=fake.api_key_secret)
    create(settings, public_base_url=PUBLIC).send([sms("+14155550100")])
    assert fake.messages[0].auth_user == fake.api_key_sid
    assert fake.messages[0].status_callback is not None


@pytest.mark.parametrize(("fate", "status", "state", "code"), [
    (Fate(), "delivered", ReceiptState.DELIVERED, None),
    (Fate.undelivered(), "undelivered", ReceiptState.UNDELIVERED, "30003"),
    (Fate.failed(), "failed", ReceiptState.FAILED, "30008"),
    (Fate(("sending", "sent")), "sent", ReceiptState.SENT, None),
    (Fate(("sending",)), "sending", None, None),  # stuck at Twilio: recorded, not shown
])
def test_look_up_maps_twilios_status_as_a_callback_would(fake: TwilioFake, fate: Fate, status: str,
                                                         state: ReceiptState, code: str | None) -> None:
    fake.fate("+14155550100", fate)
    provider = create(settings_for(fake))
    [sent] = provider.send([sms("+14155550100")])

    receipt = provider.look_up(sent.provider_message_id)

    assert receipt is not None
    assert (receipt.provider, receipt.message_id) == ("twilio", sent.provider_message_id)
    assert (receipt.provider_status, receipt.state, receipt.error_code) == (status, state, code)
    assert (receipt.error_message is not None) == (code is not None)
    assert receipt.occurred_at is not None and receipt.occurred_at.tzinfo is not None


def test_look_up_reads_a_status_recorded_but_not_shown(fake: TwilioFake) -> None:
    provider = create(settings_for(fake))
    [sent] = provider.send([sms("+14155550100")])
    fake.resources[sent.provider_message_id]["status"] = "scheduled"
    receipt = provider.look_up(sent.provider_message_id)
    assert receipt is not None and (receipt.provider_status, receipt.state) == ("scheduled", None)


@pytest.mark.parametrize("trouble", ["unknown sid", "not a sid", "500", "429", "401", "refused", "not json"])
def test_look_up_is_none_when_twilio_cannot_say(fake: TwilioFake, trouble: str) -> None:
    provider = create(settings_for(fake, timeout_seconds=1.0))
    [sent] = provider.send([sms("+14155550100")])
    sid = str(sent.provider_message_id)
    if trouble == "unknown sid":
        sid = "SM" + "0" * 32  # a 404: Twilio has no such Message
    elif trouble == "not a sid":
        sid = "../Messages"
    elif trouble in ("500", "429"):
        fake.push_fault(Fault(status=int(trouble)))
    elif trouble == "401":
        provider = create(settings_for(fake, auth_token="wrong"))
    elif trouble == "refused":
        fake.stop()
    elif trouble == "not json":
        fake.push_fault(Fault(status=200, body="<html>"))
    assert provider.look_up(sid) is None


def test_the_provider_is_a_receipt_source(fake: TwilioFake) -> None:
    """The missing-receipt check asks providers that are."""
    assert isinstance(create(settings_for(fake)), ReceiptSource)


def test_only_the_gateways_own_callback_url_makes_the_message_index_needless(fake: TwilioFake) -> None:
    """Delivery writes no message-id index when every callback names its recipient; a Messaging Service's URL or
    one of the operator's own may not."""
    assert create(settings_for(fake), public_base_url=PUBLIC).receipts_name_the_recipient
    assert not create(settings_for(fake)).receipts_name_the_recipient
    explicit = settings_for(fake, status_callback_url="http://127.0.0.1:9/mine")
    assert not create(explicit, public_base_url=PUBLIC).receipts_name_the_recipient
    keys_only = settings_for(fake, auth_token=None, api_key_sid=fake.api_key_sid, api_key_secret=fake.api_key_secret)
    assert not create(keys_only, public_base_url=PUBLIC).receipts_name_the_recipient


# --- settings -----------------------------------------------------------------------------------------------------

ACCOUNT = "AC" + "a" * 32
KEY = "SK" + "b" * 32


def test_settings_from_env_with_defaults() -> None:
    settings = TwilioSettings.from_env({"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": "tok"})
    assert settings.base_url == "https://api.twilio.com"
    assert settings.timeout_seconds == 10
    assert settings.basic_auth == (ACCOUNT, "tok")
    assert settings.messaging_service_sid is None and settings.status_callback_url is None


def test_settings_from_env_with_everything() -> None:
    settings = TwilioSettings.from_env(
        {
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_AUTH_TOKEN": "tok",  # with an API key pair too: the pair for REST, the token for callbacks
            "TWILIO_API_KEY_SID": KEY,
            "TWILIO_API_KEY_SECRET": "sec",
            "TWILIO_MESSAGING_SERVICE_SID": SERVICE_SID,
            "TWILIO_STATUS_CALLBACK_URL": "https://gw.example/status",
            "TWILIO_BASE_URL": "http://127.0.0.1:9999/",
            "TWILIO_TIMEOUT_SECONDS": "2.5",
        }
    )
    assert settings.basic_auth == (KEY, "sec") and settings.auth_token == "tok"
    assert settings.base_url == "http://127.0.0.1:9999"
    assert settings.timeout_seconds == 2.5
    assert settings.messaging_service_sid == SERVICE_SID


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "TWILIO_ACCOUNT_SID"),
        ({"TWILIO_ACCOUNT_SID": "AC123", "TWILIO_AUTH_TOKEN": "t"}, "TWILIO_ACCOUNT_SID"),
        ({"TWILIO_ACCOUNT_SID": ACCOUNT}, "TWILIO_AUTH_TOKEN"),
        ({"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_API_KEY_SID": KEY}, "TWILIO_API_KEY_SECRET"),
        ({"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_API_KEY_SECRET": "s"}, "TWILIO_API_KEY_SID"),
        ({"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_API_KEY_SID": "AC" + "b" * 32, "TWILIO_API_KEY_SECRET": "s"},
         "TWILIO_API_KEY_SID"),
        ({"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": "t", "TWILIO_MESSAGING_SERVICE_SID": "MG1"},
         "TWILIO_MESSAGING_SERVICE_SID"),
        ({"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": "t", "TWILIO_STATUS_CALLBACK_URL": "gw/status"},
         "TWILIO_STATUS_CALLBACK_URL"),
        ({"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": "t", "TWILIO_BASE_URL": "ftp://x"}, "TWILIO_BASE_URL"),
        ({"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": "t", "TWILIO_TIMEOUT_SECONDS": "0"},
         "TWILIO_TIMEOUT_SECONDS"),
        ({"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": "t", "TWILIO_TIMEOUT_SECONDS": "ten"},
         "TWILIO_TIMEOUT_SECONDS"),
    ],
)
def test_settings_errors_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        TwilioSettings.from_env(env)


def test_settings_repr_hides_secrets() -> None:
    token = TwilioSettings.from_env({"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": "tok-SECRET-1"})
    pair = TwilioSettings.from_env(
        {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_API_KEY_SID": KEY, "TWILIO_API_KEY_SECRET": "key-SECRET-2"}
    )
    assert "SECRET" not in repr(token) and "SECRET" not in repr(pair)
    assert ACCOUNT in repr(token) and KEY in repr(pair)


def test_importing_the_registry_or_twilio_does_not_load_the_acs_sdk() -> None:
    code = (
        "import sys, gateway.providers, gateway.providers.twilio, gateway.settings\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('azure.communication'))\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# --- the fake itself rejects what Twilio rejects --------------------------------------------------------------------


def post(fake: TwilioFake, data: object, *, auth: tuple[str, str] | None = None, **kwargs: object) -> requests.Response:
    return requests.post(
        fake.messages_url, data=data, auth=auth or (fake.account_sid, fake.auth_token), timeout=5, **kwargs
    )  # type: ignore[arg-type]


def assert_twilio_error(response: requests.Response, status: int, code: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "more_info", "status"}
    assert (body["code"], body["status"]) == (code, status)
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


VALID = {"To": "+14155550100", "From": SENDER, "Body": "hi"}


@pytest.mark.parametrize(
    "auth",
    [None, ("AC" + "0" * 32, "x"), ("wrong", "wrong")],
)
def test_fake_refuses_bad_credentials_with_20003(fake: TwilioFake, auth: tuple[str, str] | None) -> None:
    response = requests.post(fake.messages_url, data=VALID, timeout=5) if auth is None else post(fake, VALID, auth=auth)
    assert_twilio_error(response, 401, 20003)
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert fake.messages == []


def test_fake_refuses_right_credentials_on_another_accounts_url(fake: TwilioFake) -> None:
    url = fake.messages_url.replace(fake.account_sid, "AC" + "0" * 32)
    response = requests.post(url, data=VALID, auth=(fake.account_sid, fake.auth_token), timeout=5)
    assert_twilio_error(response, 401, 20003)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"From": SENDER, "Body": "hi"}, 21604),
        ({"To": "+14155550100", "Body": "hi"}, 21603),
        ({"To": "+14155550100", "From": SENDER}, 21602),
        ({"To": "+14155550100", "From": SENDER, "Body": ""}, 21602),
        ({"To": "+14155550100", "From": SENDER, "Body": "x" * 1601}, 21617),
        ({"To": "not a number", "From": SENDER, "Body": "hi"}, 21211),
    ],
)
def test_fake_answers_missing_or_bad_parameters_with_twilios_codes(
    fake: TwilioFake, data: dict[str, str], code: int
) -> None:
    assert_twilio_error(post(fake, data), 400, code)
    assert fake.messages == []


@pytest.mark.parametrize(
    "data",
    [
        {**VALID, "Bogus": "1"},  # not a parameter of CreateMessage
        {**VALID, "MessagingServiceSid": "MG123"},  # pattern ^MG[0-9a-fA-F]{32}$
        {**VALID, "ValidityPeriod": "soon"},  # integer
        {**VALID, "ProvideFeedback": "maybe"},  # boolean
        {**VALID, "RiskCheck": "sometimes"},  # enum
        [("To", "+14155550100"), ("To", "+14155550101"), ("From", SENDER), ("Body", "hi")],  # To once
    ],
)
def test_fake_refuses_requests_outside_the_openapi_description(fake: TwilioFake, data: object) -> None:
    assert_twilio_error(post(fake, data), 400, 70002)
    assert fake.messages == []


def test_fake_accepts_optional_parameters_the_description_allows(fake: TwilioFake) -> None:
    data = [*VALID.items(), ("ValidityPeriod", "600"), ("MediaUrl", "https://x.example/a.png"),
            ("MediaUrl", "https://x.example/b.png"), ("SmartEncoded", "true")]
    response = post(fake, data)
    assert response.status_code == 201, response.text
    assert fake.messages[0].params["MediaUrl"] == ["https://x.example/a.png", "https://x.example/b.png"]
    assert fake.messages[0].params["ValidityPeriod"] == 600


def test_fake_wants_a_form_body(fake: TwilioFake) -> None:
    response = post(fake, None, json=VALID)
    assert_twilio_error(response, 400, 70002)


def test_fake_knows_only_described_paths_and_methods(fake: TwilioFake) -> None:
    auth = (fake.account_sid, fake.auth_token)
    assert_twilio_error(requests.post(f"{fake.base_url}/2010-04-01/Messages.json", data=VALID, auth=auth), 404, 20404)
    assert_twilio_error(requests.put(fake.messages_url, data=VALID, auth=auth, timeout=5), 405, 20004)


def test_fake_answers_with_the_described_message_resource(fake: TwilioFake) -> None:
    response = post(fake, VALID)
    assert response.status_code == 201
    resource = response.json()
    operation = fake.description.match("POST", f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json")
    fake.description.check_response(operation, 201, resource)
    assert resource["status"] == "queued" and resource["direction"] == "outbound-api"
    assert resource["sid"].startswith("SM") and len(resource["sid"]) == 34
    fetched = requests.get(
        f"{fake.base_url}{resource['uri']}", auth=(fake.account_sid, fake.auth_token), timeout=5
    ).json()
    # The fake sends at once: fetched later, the Message reads as sent.
    assert fetched == {**resource, "status": "sent", "date_sent": resource["date_created"]}
    # The response check is not vacuous: a sid outside ^(SM|MM)[0-9a-fA-F]{32}$ fails it.
    with pytest.raises(AssertionError):
        fake.description.check_response(operation, 201, {**resource, "sid": "XX1"})


def test_fake_stops_listening(fake: TwilioFake) -> None:
    fake.stop()
    with pytest.raises(requests.ConnectionError):
        post(fake, VALID)
