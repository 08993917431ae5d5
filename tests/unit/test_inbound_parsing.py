"""Inbound messages as each provider sends them, read into an InboundMessage: Twilio's signed form, ACS's
``SMSReceived`` event. Over HTTP: tests/integration/test_inbound.py."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from gateway.inbound import InboundMessage
from gateway.providers.acs_events import MalformedEvent, read_event
from gateway.providers.twilio_callbacks import ForgedCallback, MalformedCallback
from gateway.providers.twilio_inbound import read_inbound

TOKEN = "0123456789abcdef0123456789abcdef"
BASE = "https://sms.example.org"
URL = f"{BASE}/api/providers/twilio/inbound"
SID = "SM" + "c" * 32


def inbound_form(**extra: str) -> list[tuple[str, str]]:
    """An inbound webhook's fields as Twilio sends them (legacy twins, geo fields and all)."""
    fields = {"ToCountry": "US", "SmsMessageSid": SID, "NumMedia": "0", "SmsSid": SID, "SmsStatus": "received",
              "Body": "Yes, see you then", "To": "+15005550006", "NumSegments": "1", "MessageSid": SID,
              "AccountSid": "AC" + "b" * 32, "From": "+447700900123", "ApiVersion": "2010-04-01", "FromCity": "",
              **extra}
    return list(fields.items())


def read(pairs: list[tuple[str, str]], *, url: str = URL, token: str = TOKEN, signature: str | None = None
         ) -> InboundMessage:
    signature = signature if signature is not None else RequestValidator(TOKEN).compute_signature(url, dict(pairs))
    return read_inbound(request_url="http://10.0.0.4:8080/api/providers/twilio/inbound", public_base_url=BASE,
                        auth_token=token, signature=signature, body=urlencode(pairs).encode())


def test_a_signed_inbound_form_becomes_a_message() -> None:
    assert read(inbound_form()) == InboundMessage(provider="twilio", message_id=SID, sender="+447700900123",
                                                  to="+15005550006", body="Yes, see you then")


def test_the_body_is_kept_as_sent_and_unknown_fields_are_ignored() -> None:
    message = read(inbound_form(Body="  STOP \n", NewField="x"))
    assert message.body == "  STOP \n"


@pytest.mark.parametrize("forgery", ["other token", "other url", "changed body", "no signature", "no token"])
def test_anything_not_signed_by_the_token_for_this_url_and_body_is_forged(forgery: str) -> None:
    pairs = inbound_form()
    good = RequestValidator(TOKEN).compute_signature(URL, dict(pairs))
    cases = {
        "other token": {"signature": RequestValidator("f" * 32).compute_signature(URL, dict(pairs))},
        "other url": {"signature": RequestValidator(TOKEN).compute_signature(f"{BASE}/api/providers/twilio/status",
                                                                             dict(pairs))},
        "changed body": {"signature": good, "pairs": inbound_form(Body="STOP")},
        "no signature": {"signature": ""},
        "no token": {"signature": good, "token": ""},
    }
    case = cases[forgery]
    with pytest.raises(ForgedCallback):
        read_inbound(request_url=URL, public_base_url=BASE, auth_token=case.get("token", TOKEN),
                     signature=case["signature"], body=urlencode(case.get("pairs", pairs)).encode())


@pytest.mark.parametrize(("drop", "missing"), [({"MessageSid", "SmsSid", "SmsMessageSid"}, "MessageSid"),
                                               ({"From"}, "From"), ({"To"}, "To")])
def test_a_signed_form_without_sid_or_numbers_is_malformed(drop: set[str], missing: str) -> None:
    pairs = [(name, value) for name, value in inbound_form() if name not in drop]
    with pytest.raises(MalformedCallback) as raised:
        read(pairs)
    assert raised.value.field == missing


# Microsoft's sample (azure-docs articles/event-grid/communication-services-telephony-sms-events.md).
SMS_RECEIVED = {
    "id": "Incoming_20200918002745d29ebbea-3341-4466-9690-0a03af35228e",
    "topic": "/subscriptions/{subscription-id}/resourcegroups/{group-name}/providers/microsoft.communication/"
             "communicationservices/{communication-services-resource-name}",
    "subject": "/phonenumber/15555555555",
    "data": {"MessageId": "Incoming_20200918002745d29ebbea-3341-4466-9690-0a03af35228e", "From": "15555555555",
             "To": "15555555555", "Message": "Great to connect with ACS events", "ReceivedTimestamp":
             "2020-09-18T00:27:45.32Z"},
    "eventType": "Microsoft.Communication.SMSReceived",
    "dataVersion": "1.0",
    "metadataVersion": "1",
    "eventTime": "2020-09-18T00:27:47Z",
}


def test_an_sms_received_event_becomes_a_message_with_numbers_normalised() -> None:
    assert read_event(SMS_RECEIVED) == InboundMessage(
        provider="acs", message_id="Incoming_20200918002745d29ebbea-3341-4466-9690-0a03af35228e",
        sender="+15555555555", to="+15555555555", body="Great to connect with ACS events",
        received_at=datetime(2020, 9, 18, 0, 27, 45, 320000, tzinfo=UTC))


def test_lower_case_names_and_no_timestamp_read_the_same() -> None:
    event = {**SMS_RECEIVED, "data": {"messageId": "Incoming_1", "from": "+1 555 555 0100", "to": "15555550199",
                                      "message": "STOP"}}
    message = read_event(event)
    assert isinstance(message, InboundMessage)
    assert (message.sender, message.to, message.body) == ("+15555550100", "+15555550199", "STOP")
    assert message.received_at == datetime(2020, 9, 18, 0, 27, 47, tzinfo=UTC)  # the event's time


@pytest.mark.parametrize(("data", "why"), [
    ("hello", "without a data object"),
    ({"from": "15555555555", "to": "15555555555", "message": "x"}, "without data.messageId"),
    ({"messageId": "Incoming_1", "from": "ACME", "to": "15555555555", "message": "x"}, "phone number"),
    ({"messageId": "Incoming_1", "from": "15555555555", "message": "x"}, "phone number"),
])
def test_an_sms_received_event_that_cannot_be_read_says_why(data: object, why: str) -> None:
    with pytest.raises(MalformedEvent, match=why):
        read_event({**SMS_RECEIVED, "data": data})
