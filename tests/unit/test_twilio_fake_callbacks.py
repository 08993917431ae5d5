"""The Twilio fake's status callbacks: signed as Twilio signs them, with Twilio's fields, in the order and with the
repeats a test asks for, posted after the create's answer and never retried; and its refusal of a StatusCallback
Twilio would refuse. The gateway receiving them over HTTP: tests/integration/test_twilio_receipts.py."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest
import requests
from twilio.request_validator import RequestValidator

from fakes.twilio import CallbackPlan, Fate, TwilioFake
from gateway.providers import twilio_signature

TO = "+14155550100"


@dataclass
class Receiver:
    """A stand-in for the gateway's callback route: records each POST and answers ``status``."""

    url: str
    status: int = 204
    got: list[tuple[str, dict[str, str], list[tuple[str, str]]]] = field(default_factory=list)
    hold: threading.Event | None = None  # when set, an answer waits for it

    def statuses(self) -> list[str]:
        return [dict(form)["MessageStatus"] for _, _, form in self.got]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            box.got.append((self.path, dict(self.headers), parse_qsl(body, keep_blank_values=True)))
            if box.hold is not None:
                box.hold.wait(10)
            self.send_response(box.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box = Receiver(f"http://127.0.0.1:{server.server_address[1]}/api/providers/twilio/status")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield box
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake() -> Iterator[TwilioFake]:
    with TwilioFake() as running:
        yield running  # type: ignore[misc]


def create(fake: TwilioFake, to: str = TO, callback: str | None = None, **extra: str) -> requests.Response:
    form = {"To": to, "From": "+15005550006", "Body": "hi", **extra}
    if callback is not None:
        form["StatusCallback"] = callback
    return requests.post(fake.messages_url, data=form, auth=(fake.account_sid, fake.auth_token), timeout=10)


def fetch(fake: TwilioFake, sid: str) -> dict:
    url = fake.messages_url.removesuffix(".json") + f"/{sid}.json"
    return requests.get(url, auth=(fake.account_sid, fake.auth_token), timeout=10).json()


def test_callbacks_are_signed_with_twilios_fields_and_follow_the_message(fake: TwilioFake,
                                                                          receiver: Receiver) -> None:
    url = receiver.url + "?CommId=0f&Index=2"
    created = create(fake, callback=url)
    assert created.status_code == 201 and created.json()["status"] == "queued"
    fake.wait_for_callbacks()

    assert receiver.statuses() == ["sending", "sent", "delivered"]
    sid = created.json()["sid"]
    for path, headers, form in receiver.got:
        fields = dict(form)
        assert path == "/api/providers/twilio/status?CommId=0f&Index=2"
        assert {"MessageSid", "SmsSid", "MessageStatus", "SmsStatus", "AccountSid", "From", "To",
                "ApiVersion"} <= set(fields)
        assert (fields["MessageSid"], fields["SmsSid"], fields["To"]) == (sid, sid, TO)
        assert fields["SmsStatus"] == fields["MessageStatus"] and fields["AccountSid"] == fake.account_sid
        assert "ErrorCode" not in fields
        assert headers["Content-Type"] == "application/x-www-form-urlencoded"
        signature = headers["X-Twilio-Signature"]
        assert RequestValidator(fake.auth_token).validate(url, fields, signature)
        assert twilio_signature.is_valid(fake.auth_token, url, form, signature)
        assert not twilio_signature.is_valid("another token", url, form, signature)
    assert "RawDlrDoneDate" in dict(receiver.got[-1][2])
    assert fetch(fake, sid)["status"] == "delivered"
    assert [(c.status, c.answered) for c in fake.callbacks] == [("sending", 204), ("sent", 204), ("delivered", 204)]


@pytest.mark.parametrize(("fate", "statuses", "code"), [
    (Fate.undelivered(), ["sending", "sent", "undelivered"], 30003),
    (Fate.failed(), ["sending", "failed"], 30008),
    (Fate.undelivered(30007), ["sending", "sent", "undelivered"], 30007),
])
def test_a_number_can_be_marked_undelivered_or_failed(fake: TwilioFake, receiver: Receiver, fate: Fate,
                                                      statuses: list[str], code: int) -> None:
    fake.fate(TO, fate)
    sid = create(fake, callback=receiver.url).json()["sid"]
    fake.wait_for_callbacks()

    assert receiver.statuses() == statuses
    assert dict(receiver.got[-1][2])["ErrorCode"] == str(code)
    assert all("ErrorCode" not in dict(form) for _, _, form in receiver.got[:-1])
    message = fetch(fake, sid)
    assert (message["status"], message["error_code"]) == (statuses[-1], code)
    assert message["error_message"]


def test_without_a_callback_url_a_marked_number_reads_its_fate_at_once(fake: TwilioFake) -> None:
    fake.fate(TO, Fate.undelivered())
    marked = create(fake).json()["sid"]
    plain = create(fake, to="+14155550101").json()["sid"]
    assert (fetch(fake, marked)["status"], fetch(fake, marked)["error_code"]) == ("undelivered", 30003)
    assert fetch(fake, plain)["status"] == "sent"  # as before callbacks existed
    assert fake.callbacks == []


def test_out_of_order_with_duplicates(fake: TwilioFake, receiver: Receiver) -> None:
    fake.callback_plan = CallbackPlan(order="reversed", duplicates=1)
    sid = create(fake, callback=receiver.url).json()["sid"]
    fake.wait_for_callbacks()
    assert receiver.statuses() == ["delivered", "delivered", "sent", "sent", "sending", "sending"]
    assert fetch(fake, sid)["status"] == "delivered"  # a later "sent" does not take the Message back

    fake.callback_plan = CallbackPlan(order="shuffled", duplicates=2, seed=7)
    create(fake, callback=receiver.url)
    fake.wait_for_callbacks()
    shuffled = receiver.statuses()[6:]
    assert sorted(shuffled) == sorted(["sending", "sent", "delivered"] * 3)
    assert shuffled != ["sending"] * 3 + ["sent"] * 3 + ["delivered"] * 3


def test_callbacks_go_after_the_answer_unless_asked_to_come_first(fake: TwilioFake, receiver: Receiver) -> None:
    receiver.hold = threading.Event()  # the receiver answers nothing until released
    started = time.monotonic()
    assert create(fake, callback=receiver.url).status_code == 201
    assert time.monotonic() - started < 5  # the create did not wait for its callbacks
    receiver.hold.set()
    fake.wait_for_callbacks()

    receiver.got.clear()
    fake.callback_plan = CallbackPlan(before_answer=True)
    created = create(fake, callback=receiver.url)
    assert created.status_code == 201
    assert receiver.statuses() == ["sending", "sent", "delivered"]  # all answered before the create was


def test_a_failed_callback_is_logged_and_not_retried(fake: TwilioFake, receiver: Receiver,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    receiver.status = 500
    create(fake, callback=receiver.url)
    fake.wait_for_callbacks()
    assert receiver.statuses() == ["sending", "sent", "delivered"]  # one POST each, no retry
    assert [c.answered for c in fake.callbacks] == [500, 500, 500]
    assert "failed (HTTP 500); not retried" in caplog.text

    nobody = receiver.url.replace(receiver.url.split("/")[2], "127.0.0.1:9")  # nothing listens on port 9
    with caplog.at_level(logging.WARNING, logger="fakes.twilio"):
        create(fake, callback=nobody)
        fake.wait_for_callbacks()
    assert [c.error for c in fake.callbacks[3:]] == ["ConnectionError"] * 3


@pytest.mark.parametrize("url", [
    "not a url", "ftp://example.com/status", "https:///status", "https://bad_host.example.com/status",
    "https://example.com/" + "x" * 4000, "https://example.com:port/status", "/api/providers/twilio/status",
])
def test_a_status_callback_twilio_would_refuse_is_refused_with_21609(fake: TwilioFake, url: str) -> None:
    answer = create(fake, callback=url)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == 21609
    assert fake.messages == [] and fake.callbacks == []
