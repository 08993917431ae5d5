"""Twilio's status callbacks as the gateway reads them: the URL it gives Twilio, the URL it checks the signature
against, and what each form means as a Receipt. Over HTTP: tests/integration/test_twilio_receipts.py."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from gateway.providers.twilio_callbacks import (
    ForgedCallback,
    MalformedCallback,
    callback_url,
    read_callback,
    receipt_from,
    signed_url,
    state_of,
)
from gateway.receipts import ReceiptState

TOKEN = "0123456789abcdef0123456789abcdef"
BASE = "https://sms.example.org"
COMM = uuid.UUID("0d6f4a8e-5c1b-4e57-9a43-1f7d2b3c4e5f")
SID = "SM" + "a" * 32


def form(status: str = "delivered", **extra: str) -> list[tuple[str, str]]:
    """A callback's fields as Twilio sends them (legacy twins included)."""
    fields = {"SmsSid": SID, "SmsStatus": status, "MessageStatus": status, "To": "+447700900123",
              "MessageSid": SID, "AccountSid": "AC" + "b" * 32, "From": "+15005550006", "ApiVersion": "2010-04-01",
              **extra}
    return list(fields.items())


def signed(url: str, pairs: list[tuple[str, str]], token: str = TOKEN) -> str:
    """What Twilio would put in X-Twilio-Signature (its own package computes it)."""
    return RequestValidator(token).compute_signature(url, dict(pairs))


def test_the_callback_url_carries_the_row_and_is_what_twilio_calls() -> None:
    url = callback_url(BASE, COMM, 7)
    assert url == f"{BASE}/api/providers/twilio/status?CommId={COMM.hex}&Index=7"
    assert callback_url(BASE, COMM, None) == f"{BASE}/api/providers/twilio/status?CommId={COMM.hex}"
    # Behind TLS termination the app sees another scheme and host: the public base URL replaces them.
    internal = f"http://10.0.0.4:8080/api/providers/twilio/status?CommId={COMM.hex}&Index=7"
    assert signed_url(internal, BASE) == url
    assert signed_url(internal, None) == internal  # local development: the request's own URL
    assert signed_url("http://h/api/x?a=%20b&a=c", BASE) == f"{BASE}/api/x?a=%20b&a=c"  # the query as sent


def test_a_signed_callback_becomes_a_receipt_with_the_row_from_the_query() -> None:
    url = callback_url(BASE, COMM, 3)
    pairs = form("undelivered", ErrorCode="30003", RawDlrDoneDate="2611300842", SomethingNew="x")
    request_url = url.replace(BASE, "http://127.0.0.1:7071")

    receipt = read_callback(request_url=request_url, public_base_url=BASE, auth_token=TOKEN,
                            signature=signed(url, pairs), body=urlencode(pairs).encode())

    assert (receipt.provider, receipt.message_id, receipt.provider_status) == ("twilio", SID, "undelivered")
    assert (receipt.state, receipt.error_code) == (ReceiptState.UNDELIVERED, "30003")
    assert (receipt.comm_id, receipt.index, receipt.to) == (COMM, 3, "+447700900123")


def test_the_default_port_spelling_is_accepted() -> None:
    url = callback_url(BASE, COMM, 0)
    pairs = form()
    with_port = url.replace(BASE, BASE + ":443")
    receipt = read_callback(request_url=url, public_base_url=BASE, auth_token=TOKEN,
                            signature=signed(with_port, pairs), body=urlencode(pairs).encode())
    assert receipt.state is ReceiptState.DELIVERED


@pytest.mark.parametrize("forgery", ["wrong token", "changed field", "added field", "changed query", "other host",
                                     "no signature", "no token", "not utf-8"])
def test_anything_not_signed_by_the_token_for_this_url_and_body_is_forged(forgery: str) -> None:
    url = callback_url(BASE, COMM, 0)
    pairs = form("delivered")
    signature: str | None = signed(url, pairs, "another-token" if forgery == "wrong token" else TOKEN)
    body = urlencode(pairs).encode()
    request_url, base, token = url, BASE, TOKEN
    if forgery == "changed field":
        body = urlencode(form("failed")).encode()
    elif forgery == "added field":
        body += b"&ErrorCode=30008"
    elif forgery == "changed query":
        request_url = url.replace("Index=0", "Index=1")
    elif forgery == "other host":
        base = "https://other.example.org"
    elif forgery == "no signature":
        signature = None
    elif forgery == "no token":
        token = None
    elif forgery == "not utf-8":
        body += b"&Body=\xff"
    with pytest.raises(ForgedCallback):
        read_callback(request_url=request_url, public_base_url=base, auth_token=token, signature=signature, body=body)


@pytest.mark.parametrize(("status", "state"), [
    ("sent", ReceiptState.SENT), ("delivered", ReceiptState.DELIVERED), ("undelivered", ReceiptState.UNDELIVERED),
    ("failed", ReceiptState.FAILED), ("Delivered", ReceiptState.DELIVERED), ("queued", None), ("sending", None),
    ("accepted", None), ("scheduled", None), ("canceled", None), ("read", None), ("partially_delivered", None),
])
def test_statuses_map_to_states_and_the_rest_are_recorded_without_one(status: str, state: ReceiptState | None) -> None:
    receipt = receipt_from(form(status), {})
    assert receipt.state is state and state_of(status) is state
    assert receipt.provider_status == status.lower()


def test_legacy_names_alone_are_enough_and_unknown_fields_are_ignored() -> None:
    receipt = receipt_from([("SmsSid", SID), ("SmsStatus", "failed"), ("ErrorCode", "30008"), ("Whatever", "1")], {})
    assert (receipt.message_id, receipt.state, receipt.error_code) == (SID, ReceiptState.FAILED, "30008")
    assert (receipt.comm_id, receipt.index, receipt.to) == (None, None, None)  # found by its sid


@pytest.mark.parametrize(("pairs", "missing"), [
    ([("MessageStatus", "delivered")], "MessageSid"),
    ([("MessageSid", ""), ("MessageStatus", "delivered")], "MessageSid"),
    ([("MessageSid", SID)], "MessageStatus"),
])
def test_a_callback_without_sid_or_status_is_malformed(pairs: list[tuple[str, str]], missing: str) -> None:
    with pytest.raises(MalformedCallback) as raised:
        receipt_from(pairs, {})
    assert raised.value.field == missing


@pytest.mark.parametrize(("query", "comm_id", "index"), [
    ({"CommId": COMM.hex, "Index": "12"}, COMM, 12),
    ({"CommId": str(COMM), "Index": "0"}, COMM, 0),
    ({"CommId": "not-a-guid", "Index": "-1"}, None, None),
    ({"CommId": COMM.hex, "Index": "²"}, COMM, None),
    ({"CommId": COMM.hex, "Index": "99999999999999999999"}, COMM, None),
    ({}, None, None),
])
def test_the_query_finds_the_row_or_leaves_it_to_the_sid(query: dict[str, str], comm_id: uuid.UUID | None,
                                                         index: int | None) -> None:
    receipt = receipt_from(form(), query)
    assert (receipt.comm_id, receipt.index) == (comm_id, index)


def test_a_to_that_is_not_a_phone_number_is_not_kept() -> None:
    assert receipt_from(form(To="whatsapp:+447700900123"), {}).to is None


def test_the_from_a_callback_names_is_the_sender_a_messaging_service_picked() -> None:
    assert receipt_from(form(From="+14155550123"), {}).sender == "+14155550123"
    assert receipt_from([(k, v) for k, v in form() if k != "From"], {}).sender is None
