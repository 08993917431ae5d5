"""ACS delivery reports through Event Grid, over real HTTP on the local host (``python -m devhost``) and Azurite.

The ACS fake's Event Grid (fakes/eventgrid.py) runs the validation handshake against the gateway's
``/api/providers/acs/events?key=…`` and delivers the reports the fake makes for each SMS it sends; other
events are built with azure-eventgrid and POSTed as Event Grid delivers them.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.eventgrid import EventGridEvent

from fakes.acs import AcsFake
from fakes.eventgrid import EventGridSubscription, validation_event, wire_batch
from fakes.twilio import TwilioFake
from gateway.providers.acs_events import DELIVERY_REPORT_EVENT
from gateway.runtime import Gateway
from gateway.settings import Settings
from tests.samples import NUMBERS, send_body
from tests.server import GatewayServer, server_env
from tests.waiting import wait_until

EVENTS = "/api/providers/acs/events"
KEY = secrets.token_urlsafe(32)
SEND_LIMIT = 64 * 1024  # SMS_MAX_REQUEST_BYTES, far below what Event Grid may deliver in one POST
LICENSEE = uuid.UUID("7a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
SENDER = "+18005550199"


def post_events(server: GatewayServer, events: list[EventGridEvent] | bytes, *, key: str | None = KEY,
                kind: str = "Notification") -> requests.Response:
    """A POST as Event Grid makes it: a JSON array, its headers, the key in the query."""
    body = events if isinstance(events, bytes) else wire_batch(events)
    query = "" if key is None else f"?key={key}"
    headers = {"Content-Type": "application/json; charset=utf-8", "aeg-event-type": kind,
               "aeg-subscription-name": "SMS-GATEWAY", "aeg-delivery-count": "0"}
    return requests.post(f"{server.url}{EVENTS}{query}", data=body, headers=headers, timeout=30)


def error_code(answer: requests.Response) -> str:
    """The ResponseStatus's ErrorCode (camelCase when the body looked camelCase, as for every route)."""
    body = answer.json()
    status = body.get("ResponseStatus") or body["responseStatus"]
    return status.get("ErrorCode") or status["errorCode"]


def other_event() -> EventGridEvent:
    """An event of a type the route does not handle (a topic may carry more than the SMS types)."""
    return EventGridEvent(subject="/blobServices/default/containers/x/blobs/y",
                          event_type="Microsoft.Storage.BlobCreated",
                          data={"api": "PutBlob", "contentType": "text/plain", "contentLength": 5},
                          data_version="1.0")


@pytest.fixture(scope="module")
def outbox_server(storage_connection: str) -> Iterator[GatewayServer]:
    """The gateway with the outbox provider and an Event Grid key: the route serves whatever the provider."""
    env = server_env(storage_connection, SMS_EVENTGRID_KEY=KEY, SMS_MAX_REQUEST_BYTES=str(SEND_LIMIT))
    server = GatewayServer.start(env, "--no-queues")
    yield server
    server.stop()


def test_the_handshake_is_answered_and_the_fakes_event_grid_accepts_it(outbox_server: GatewayServer) -> None:
    answer = post_events(outbox_server, [validation_event("512d38b6-c7b8-40c8-89fe-f46f9e9622b6")],
                         kind="SubscriptionValidation")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    grid = EventGridSubscription(f"{outbox_server.url}{EVENTS}?key={KEY}")
    try:
        assert grid.validate() is True
    finally:
        grid.stop()


@pytest.mark.parametrize("key", [None, "", "x" * 43, KEY[:-1], KEY + "x", KEY.upper() if KEY.upper() != KEY else "y"],
                         ids=["missing", "empty", "other", "shorter", "longer", "case"])
def test_a_wrong_or_missing_key_is_401_even_for_the_handshake(outbox_server: GatewayServer, key: str | None) -> None:
    answer = post_events(outbox_server, [validation_event("code")], key=key, kind="SubscriptionValidation")
    assert answer.status_code == 401
    assert error_code(answer) == "Unauthorized"
    assert "WWW-Authenticate" in answer.headers
    assert "validationResponse" not in answer.text and KEY not in answer.text
    grid = EventGridSubscription(f"{outbox_server.url}{EVENTS}" + ("" if key is None else f"?key={key}"))
    try:
        assert grid.validate() is False  # Event Grid would not create the subscription
    finally:
        grid.stop()


@pytest.mark.parametrize(("body", "code"), [
    (b"not json", "MalformedBatch"),
    (b'{"eventType": "Microsoft.EventGrid.SubscriptionValidationEvent"}', "MalformedBatch"),
    (b"[1, 2]", "MalformedEvent"),
    (json.dumps([{"eventType": DELIVERY_REPORT_EVENT, "data": {"deliveryStatus": "Delivered"}}]).encode(),
     "MalformedEvent"),
])
def test_a_body_event_grid_could_not_have_sent_is_400(outbox_server: GatewayServer, body: bytes, code: str) -> None:
    answer = post_events(outbox_server, body)
    assert answer.status_code == 400, answer.text
    assert error_code(answer) == code


def test_a_validation_delivery_without_a_validation_event_is_400(outbox_server: GatewayServer) -> None:
    answer = post_events(outbox_server, [other_event()], kind="SubscriptionValidation")
    assert answer.status_code == 400
    assert error_code(answer) == "MalformedBatch"


def test_other_event_types_are_accepted_and_ignored(outbox_server: GatewayServer) -> None:
    answer = post_events(outbox_server, [other_event(), other_event()])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"ignored": 2}
    assert post_events(outbox_server, b"[]").status_code == 200


def test_a_full_event_grid_batch_is_read_whatever_sms_max_request_bytes_says(outbox_server: GatewayServer) -> None:
    one = len(wire_batch([other_event()])) + 8  # event times vary in length by a few characters
    events = [other_event() for _ in range(1024 * 1024 // one)]  # about 1 MiB: Event Grid's largest batch
    body = wire_batch(events)
    assert SEND_LIMIT < 1000 * 1024 < len(body) <= 1024 * 1024
    answer = post_events(outbox_server, body)
    assert (answer.status_code, answer.json()) == (200, {"ignored": len(events)})
    too_big = wire_batch(events * 3)
    assert post_events(outbox_server, too_big, key="wrong").status_code == 401  # the key before anything
    assert post_events(outbox_server, too_big).status_code == 413


def test_the_route_also_serves_while_twilio_delivers(storage_connection: str) -> None:
    with TwilioFake() as twilio:
        env = server_env(storage_connection, SMS_EVENTGRID_KEY=KEY, SMS_PROVIDER="twilio",
                         TWILIO_ACCOUNT_SID=twilio.account_sid, TWILIO_AUTH_TOKEN=twilio.auth_token,
                         TWILIO_BASE_URL=twilio.base_url)
        server = GatewayServer.start(env, "--no-queues")
        try:
            answer = post_events(server, [validation_event("twilio-now")], kind="SubscriptionValidation")
            assert (answer.status_code, answer.json()) == (200, {"validationResponse": "twilio-now"})
            assert post_events(server, [validation_event("x")], key="wrong").status_code == 401
        finally:
            server.stop()


def test_without_an_event_grid_key_the_route_does_not_exist(server: GatewayServer) -> None:
    unknown = server.post("/api/providers/acs/nothing-here", {})
    for key in (KEY, None):
        answer = post_events(server, [validation_event("code")], key=key, kind="SubscriptionValidation")
        assert answer.status_code == 404
        assert error_code(answer) == error_code(unknown) == "NotFound"
        assert "validationResponse" not in answer.text


def test_the_key_is_never_logged(outbox_server: GatewayServer) -> None:
    post_events(outbox_server, [validation_event("logged?")], kind="SubscriptionValidation")
    post_events(outbox_server, [validation_event("logged?")], key=KEY[::-1], kind="SubscriptionValidation")
    post_events(outbox_server, b"not json")
    log = outbox_server.log_text()
    assert EVENTS in log  # the access log has the path, without its query string
    assert KEY not in log and KEY[::-1] not in log


# --- end to end: sends through the ACS fake, reports through its Event Grid, status over GET ------------------


@pytest.fixture
def acs() -> Iterator[AcsFake]:
    with AcsFake(events_seed=5) as fake:
        yield fake  # type: ignore[misc]


def acs_env(storage_connection: str, acs: AcsFake) -> dict[str, str]:
    return server_env(storage_connection, SMS_PROVIDER="acs", ACS_CONNECTION_STRING=acs.connection_string,
                      ACS_CA_BUNDLE=acs.ca_bundle, SMS_EVENTGRID_KEY=KEY, SMS_DEFAULT_SENDER=SENDER)


def api_key(env: dict[str, str]) -> str:
    """The gateway's storage made ready, as a deployment has it, and an API key."""
    gateway = Gateway.create(Settings.from_env(env))
    gateway.ensure_resources()
    return gateway.keys.create(LICENSEE, "acs events")[1]


def status(server: GatewayServer, key: str, comm_id: str) -> dict[str, Any]:
    answer = server.get(f"/api/sms/{comm_id}", key=key)
    assert answer.status_code == 200, answer.text
    return answer.json()


def by_number(shown: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {recipient["PhoneNumber"]: recipient for recipient in shown["Recipients"]}


def test_reports_end_recipients_delivered_or_failed_and_repeats_change_nothing(storage_connection: str,
                                                                               acs: AcsFake) -> None:
    env = acs_env(storage_connection, acs)
    key = api_key(env)
    server = GatewayServer.start(env, "--no-queues")
    try:
        grid = acs.subscribe(f"{server.url}{EVENTS}?key={KEY}", seed=5, max_batch=3, duplicate_chance=1.0)
        assert grid.validate() is True
        acs.report_outcome(NUMBERS[1], "Failed", "Sender blocked for given recipient")
        # Two segments: ACS's send answer has no count, its reports' delivery attempts do.
        answer = server.post("/api/sms/send/immediate", send_body(*NUMBERS[:3], body="x" * 161), key=key)
        assert answer.status_code == 200, answer.text
        comm_id = answer.json()["CommId"]

        def settled() -> dict[str, Any] | None:
            shown = status(server, key, comm_id)
            return shown if all(r.get("ReceiptAt") for r in shown["Recipients"]) else None

        shown = wait_until(settled, what="every recipient's delivery report")
        assert grid.wait_idle()
        recipients = by_number(shown)
        assert {number: r["Status"] for number, r in recipients.items()} == {
            NUMBERS[0]: "Delivered", NUMBERS[1]: "Failed", NUMBERS[2]: "Delivered"}
        assert recipients[NUMBERS[1]]["ErrorMessage"] == "Sender blocked for given recipient"
        assert [r["Segments"] for r in recipients.values()] == [2, 2, 2]  # the failed one's too
        assert recipients[NUMBERS[0]].get("ErrorMessage") is None
        assert (shown["DeliveredCount"], shown["UndeliveredCount"]) == (2, 0)
        [blocked] = server.get("/api/optouts", key=key).json()["OptOuts"]  # issue 14: the number is listed
        assert (blocked["PhoneNumber"], blocked["Source"]) == (NUMBERS[1], "acs")
        assert blocked["Reason"] == "Sender blocked for given recipient"
        notifications = [d for d in grid.deliveries if d.kind == "Notification"]
        assert all(d.accepted for d in notifications), notifications
        assert Counter(i for d in notifications for i in d.event_ids) == {sms.message_id: 2 for sms in acs.sent}

        # Every report again, in reverse, and a contradicting one late: nothing changes any more.
        reports = [acs.delivery_report(sms) for sms in acs.sent]
        delivered = next(sms for sms in acs.sent if sms.to == NUMBERS[0])
        acs.report_outcome(NUMBERS[0], "Failed", "Late and wrong")
        late = acs.delivery_report(delivered)
        answer = post_events(server, [*reversed(reports), late])
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"duplicate": 3, "recorded": 1}  # the late one is kept, and moves nothing
        assert status(server, key, comm_id) == shown
    finally:
        server.stop()
    log = server.log_text()
    assert KEY not in log
    for number in NUMBERS[:3]:
        assert number not in log and number.lstrip("+") not in log


def test_a_report_needs_the_key_and_still_lands_after_a_switch_to_another_provider(storage_connection: str,
                                                                                   acs: AcsFake) -> None:
    env = acs_env(storage_connection, acs)
    key = api_key(env)
    server = GatewayServer.start(env, "--no-queues")  # no subscription yet: the report is held back
    try:
        answer = server.post("/api/sms/send/immediate", send_body(NUMBERS[0]), key=key)
        assert answer.status_code == 200, answer.text
        comm_id = answer.json()["CommId"]
    finally:
        server.stop()
    switched = {name: value for name, value in env.items() if not name.startswith("ACS_")} | {"SMS_PROVIDER": "outbox"}
    server = GatewayServer.start(switched, "--no-queues")
    try:
        before = status(server, key, comm_id)
        assert before["Recipients"][0]["Status"] == "Sent"
        [sms] = acs.sent
        report = acs.delivery_report(sms)
        for wrong in (None, "", KEY[::-1]):
            assert post_events(server, [report], key=wrong).status_code == 401
        assert status(server, key, comm_id) == before  # nothing changed

        answer = post_events(server, [report])
        assert (answer.status_code, answer.json()) == (200, {"applied": 1})
        status_after_switch = status(server, key, comm_id)
    finally:
        server.stop()
    assert status_after_switch["Recipients"][0]["Status"] == "Delivered"
    assert status_after_switch["Recipients"][0].get("ReceiptAt")
    assert status_after_switch["DeliveredCount"] == 1
