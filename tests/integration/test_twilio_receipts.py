"""Twilio's delivery receipts over real HTTP: the gateway as users run it (``python -m devhost``, Azurite), the
Twilio fake creating each message and posting its signed status callbacks to ``SMS_PUBLIC_BASE_URL`` from a
thread of its own, as Twilio does; and forged callbacks, which change nothing.

The signatures the tests forge or make by hand come from Twilio's own ``twilio`` package (a development
dependency), never from the gateway's code.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from twilio.request_validator import RequestValidator

from devhost.azurite import free_port
from fakes.twilio import CallbackPlan, Fate, TwilioFake
from gateway.receipt_checks import CheckPolicy, ReceiptChecker, ReceiptChecks
from gateway.runtime import Gateway
from gateway.status import describe
from gateway.storage import utcnow
from tests.http_fixtures import LICENSEE
from tests.integration.test_delivery import stored
from tests.server import GatewayServer, server_env
from tests.twilio_host import twilio_env
from tests.waiting import wait_until

ROUTE = "/api/providers/twilio/status"


@pytest.fixture(autouse=True)
def plain_fake(twilio: TwilioFake) -> Iterator[None]:
    """Each test starts with callbacks in order, once each, after the create's answer."""
    twilio.callback_plan = CallbackPlan()
    yield
    twilio.wait_for_callbacks()


@pytest.fixture(scope="module")
def env(storage_connection: str, twilio: TwilioFake, port: int) -> dict[str, str]:
    return twilio_env(storage_connection, twilio, port=port)


@pytest.fixture(scope="module")
def key(gateway: Gateway) -> str:
    return gateway.keys.create(LICENSEE, "twilio receipts")[1]


def send(server: GatewayServer, key: str, *numbers: str) -> str:
    """An immediate send to ``numbers``; its CommId."""
    model = {"To": [{"PhoneNumber": number} for number in numbers], "MessageBody": "Your code is 2468"}
    answer = server.post("/api/sendmessage/immediate", {"SMSModel": model}, key=key)
    assert answer.status_code == 200, answer.text
    return answer.json()["CommId"]


def status(server: GatewayServer, key: str, comm_id: str) -> dict:
    answer = server.get(f"/api/sms/{comm_id}", key=key)
    assert answer.status_code == 200, answer.text
    return answer.json()


def settled(server: GatewayServer, key: str, comm_id: str, want: str) -> dict:
    """The communication once its status is ``want`` (callbacks are applied as they arrive)."""
    def reached() -> dict | None:
        now = status(server, key, comm_id)
        return now if now["Status"] == want else None

    return wait_until(reached, timeout=30, what=f"comm {comm_id} to be {want}")


def sid_of(twilio: TwilioFake, number: str) -> str:
    return next(message.sid for message in reversed(twilio.messages) if message.to == number)


def number() -> str:
    """A US mobile-looking number no other test uses (the fake's fates are per number)."""
    n = uuid.uuid4().int
    return f"+1415{2 + n % 8}{n // 8 % 10**6:06d}"  # a US exchange starts with 2-9


# --- the fake's callbacks end a message Delivered -----------------------------------------------------------------


@pytest.mark.parametrize("plan", [CallbackPlan(), CallbackPlan(order="reversed", duplicates=1),
                                  CallbackPlan(order="shuffled", duplicates=2, seed=13)],
                         ids=["in-order", "reversed-twice", "shuffled-thrice"])
def test_a_message_ends_delivered_after_the_fakes_callbacks_in_any_order(
    server: GatewayServer, key: str, twilio: TwilioFake, plan: CallbackPlan
) -> None:
    twilio.callback_plan = plan
    to = number()
    comm_id = send(server, key, to)
    twilio.wait_for_callbacks()

    comm = settled(server, key, comm_id, "Delivered")
    [recipient] = comm["Recipients"]
    sid = sid_of(twilio, to)
    assert (recipient["Status"], recipient["ProviderMessageId"]) == ("Delivered", sid)
    assert recipient.get("ErrorCode") is None and recipient["ReceiptAt"]
    assert (comm["DeliveredCount"], comm["SentCount"]) == (1, 1)
    mine = [c for c in twilio.callbacks if c.sid == sid]
    assert len(mine) == 3 * (1 + plan.duplicates)
    assert {c.answered for c in mine} == {204}  # every one stored and acknowledged, duplicates too
    assert twilio.messages[-1].status_callback == (
        f"{server.url}{ROUTE}?CommId={uuid.UUID(comm_id).hex}&Index=0")


def test_the_gateways_own_callback_urls_need_no_message_index(server: GatewayServer, key: str, gateway: Gateway,
                                                            twilio: TwilioFake) -> None:
    """Each callback names CommId and Index, so delivery writes no message-id row (one write per recipient saved)."""
    to = number()
    settled(server, key, send(server, key, to), "Delivered")
    index = gateway.clients.tables.get_table_client(gateway.settings.message_index_table)
    assert list(index.query_entities("PartitionKey eq @sid", parameters={"sid": sid_of(twilio, to)})) == []


def test_undelivered_and_failed_receipts_show_their_error_codes(server: GatewayServer, key: str,
                                                                 twilio: TwilioFake) -> None:
    delivered, undelivered, failed = number(), number(), number()
    twilio.fate(undelivered, Fate.undelivered(30003))
    twilio.fate(failed, Fate.failed(30008))
    comm_id = send(server, key, delivered, undelivered, failed)
    twilio.wait_for_callbacks()

    comm = settled(server, key, comm_id, "PartiallyDelivered")
    by_number = {r["PhoneNumber"]: r for r in comm["Recipients"]}
    assert (by_number[delivered]["Status"], by_number[delivered].get("ErrorCode")) == ("Delivered", None)
    assert (by_number[undelivered]["Status"], by_number[undelivered]["ErrorCode"]) == ("Undelivered", "30003")
    assert (by_number[failed]["Status"], by_number[failed]["ErrorCode"]) == ("Failed", "30008")
    assert (comm["DeliveredCount"], comm["UndeliveredCount"]) == (1, 1)


def test_a_callback_before_the_delivery_run_recorded_the_sid_is_not_lost(server: GatewayServer, key: str,
                                                                          twilio: TwilioFake) -> None:
    twilio.callback_plan = CallbackPlan(before_answer=True)  # all answered before Twilio answers the create
    to = number()
    comm_id = send(server, key, to)

    sid = sid_of(twilio, to)
    assert [c.answered for c in twilio.callbacks if c.sid == sid] == [204, 204, 204]
    comm = settled(server, key, comm_id, "Delivered")
    assert comm["Recipients"][0]["ProviderMessageId"] == sid  # the record step kept the receipt, and the sid


# --- forged callbacks change nothing --------------------------------------------------------------------------------


def post_callback(server: GatewayServer, url: str, form: dict[str, str], signature: str | None) -> requests.Response:
    """A callback as Twilio posts it: to ``url`` (the local host's, whatever the signature says)."""
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    local = server.url + url[url.index(ROUTE):]
    return requests.post(local, data=form, headers=headers, timeout=30)


def callback_form(twilio: TwilioFake, sid: str, to: str, status: str) -> dict[str, str]:
    return {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status, "To": to,
            "From": "+15005550006", "AccountSid": twilio.account_sid, "ApiVersion": "2010-04-01"}


@pytest.mark.parametrize("forgery", ["wrong token", "changed field", "changed url", "other host", "no signature"])
def test_a_forged_callback_answers_403_and_changes_nothing(server: GatewayServer, key: str, twilio: TwilioFake,
                                                           forgery: str) -> None:
    to = number()
    twilio.fate(to, Fate(("sending", "sent")))  # no carrier receipt: the message stays Sent
    comm_id = send(server, key, to)
    twilio.wait_for_callbacks()
    before = settled(server, key, comm_id, "Sent")
    url = twilio.messages[-1].status_callback
    assert url is not None
    form = callback_form(twilio, sid_of(twilio, to), to, "delivered")

    signed_url, signed_form, token = url, form, twilio.auth_token
    if forgery == "wrong token":
        token = "0" * 32
    elif forgery == "changed field":
        signed_form = {**form, "MessageStatus": "sent", "SmsStatus": "sent"}  # signed for "sent", says "delivered"
    elif forgery == "changed url":
        signed_url = url.replace("Index=0", "Index=1")
    elif forgery == "other host":
        signed_url = url.replace(server.url, "https://gateway.example.org")
    signature = None if forgery == "no signature" else RequestValidator(token).compute_signature(signed_url,
                                                                                                 signed_form)
    answer = post_callback(server, url, form, signature)

    assert answer.status_code == 403, answer.text
    assert answer.json()["ResponseStatus"]["ErrorCode"] == "Forbidden"
    after = status(server, key, comm_id)
    assert after == before and after["Recipients"][0]["Status"] == "Sent"
    # The same callback, signed: it would have changed the recipient.
    genuine = post_callback(server, url, form, RequestValidator(twilio.auth_token).compute_signature(url, form))
    assert genuine.status_code == 204 and genuine.text == ""
    assert settled(server, key, comm_id, "Delivered")["Recipients"][0]["Status"] == "Delivered"


def test_a_signed_callback_about_an_unknown_message_is_acknowledged_and_ignored(server: GatewayServer,
                                                                                twilio: TwilioFake) -> None:
    url = f"{server.url}{ROUTE}"  # as a Messaging Service's own callback URL: no query
    form = callback_form(twilio, "SM" + uuid.uuid4().hex, number(), "delivered")
    answer = post_callback(server, url, form, RequestValidator(twilio.auth_token).compute_signature(url, form))
    assert (answer.status_code, answer.text) == (204, "")


def test_the_query_is_checked_exactly_as_sent(server: GatewayServer, twilio: TwilioFake) -> None:
    """The local host hands the adapter the raw request target (as the Functions host does the query string):
    an escaped or unusual query signs and checks as Twilio sent it."""
    url = f"{server.url}{ROUTE}?CommId={uuid.uuid4().hex}&Index=0&note=a%20b%2Bc&empty="
    form = callback_form(twilio, "SM" + uuid.uuid4().hex, number(), "sent")
    answer = post_callback(server, url, form, RequestValidator(twilio.auth_token).compute_signature(url, form))
    assert answer.status_code == 204, answer.text
    unescaped = url.replace("a%20b%2Bc", "a b+c")
    refused = post_callback(server, url, form,
                            RequestValidator(twilio.auth_token).compute_signature(unescaped, form))
    assert refused.status_code == 403


def test_a_signed_callback_without_a_message_sid_is_400(server: GatewayServer, twilio: TwilioFake) -> None:
    url = f"{server.url}{ROUTE}"
    form = {"MessageStatus": "delivered", "AccountSid": twilio.account_sid}
    answer = post_callback(server, url, form, RequestValidator(twilio.auth_token).compute_signature(url, form))
    assert answer.status_code == 400, answer.text
    assert answer.json()["ResponseStatus"]["Errors"][0]["FieldName"] == "MessageSid"


def test_the_route_is_documented_for_twilio_not_for_clients(server: GatewayServer) -> None:
    spec = requests.get(f"{server.url}/openapi.json", timeout=30).json()
    operation = spec["paths"][ROUTE]["post"]
    assert operation["description"].startswith("For Twilio, not for clients")
    assert operation["security"] == [] and set(operation["responses"]) == {"204", "400", "403", "500", "503"}
    assert "For Twilio, not for clients" in requests.get(f"{server.url}/metadata", timeout=30).text
    assert requests.get(f"{server.url}{ROUTE}", timeout=30).status_code == 405


def test_the_callbacks_leave_no_number_in_the_host_log(server: GatewayServer, key: str, twilio: TwilioFake) -> None:
    to = number()
    send(server, key, to)
    twilio.wait_for_callbacks()
    log = server.log_text()
    assert "twilio status callback" in log
    assert to[2:] not in log.replace(" ", "")


def test_callbacks_are_refused_when_the_gateway_has_no_auth_token(storage_connection: str,
                                                                  twilio: TwilioFake) -> None:
    """With an API key pair only, nothing asks for callbacks; one that comes anyway is 403."""
    port = free_port()
    env = server_env(storage_connection, SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID=twilio.account_sid,
                     TWILIO_API_KEY_SID=twilio.api_key_sid, TWILIO_API_KEY_SECRET=twilio.api_key_secret,
                     TWILIO_BASE_URL=twilio.base_url, SMS_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
    server = GatewayServer.start(env, port=port)
    try:
        url = f"{server.url}{ROUTE}"
        form = callback_form(twilio, "SM" + uuid.uuid4().hex, number(), "delivered")
        answer = post_callback(server, url, form, RequestValidator(twilio.auth_token).compute_signature(url, form))
        assert answer.status_code == 403
    finally:
        server.stop()
    assert "TWILIO_AUTH_TOKEN is not" in server.log_text()  # said at start-up


# --- no callback came: the missing-receipt check asks the fake ------------------------------------------------------


def test_a_message_no_callback_reached_is_looked_up_at_the_fake(make_gateway, twilio: TwilioFake) -> None:
    """Without SMS_PUBLIC_BASE_URL nothing calls back; the check's look-up (GET .../Messages/{sid}.json) learns it."""
    gateway = make_gateway(SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID=twilio.account_sid,
                           TWILIO_AUTH_TOKEN=twilio.auth_token, TWILIO_BASE_URL=twilio.base_url)
    comm = stored(gateway.store, 3)
    delivered, undelivered, silent = (spec.phone_number for spec in comm.recipients_spec)
    twilio.fate(delivered, Fate())
    twilio.fate(undelivered, Fate.undelivered(30005))
    twilio.fate(silent, Fate(("sending", "sent")))  # no carrier receipt: asked again later
    gateway.delivery.deliver(comm.comm_id)
    assert all(message.status_callback is None for message in twilio.messages[-3:])
    policy = CheckPolicy(after=timedelta(minutes=30), give_up=timedelta(hours=72), per_run=10)
    checks = ReceiptChecks(gateway.clients.worker_tables, gateway.settings.receipt_checks_table)
    checker = ReceiptChecker(checks, gateway.store, gateway.receipts, gateway.provider, policy,
                             clock=lambda: utcnow() + timedelta(minutes=31))

    report = checker.run()

    assert (report.taken, report.answered, report.again) == (3, 2, 1)
    asked = [seen.path for seen in twilio.requests if seen.method == "GET" and "/Messages/SM" in seen.path]
    assert len(asked) == 3
    view = describe(gateway.store.load(comm.comm_id))
    by_number = {r.PhoneNumber: r for r in view.Recipients}
    assert (by_number[delivered].Status, by_number[delivered].ErrorCode) == ("Delivered", None)
    assert (by_number[undelivered].Status, by_number[undelivered].ErrorCode) == ("Undelivered", "30005")
    assert by_number[undelivered].ErrorMessage == "Unknown destination handset"
    assert by_number[silent].Status == "Sent"
