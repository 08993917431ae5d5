"""Scheduled sends and cancel over real HTTP through devhost (worker included), against a real Azurite: the issue's
"Done when" (SendAt 15 s ahead is Scheduled, not sent at +4 s, sent by +60 s; a canceled scheduled send never
reaches the provider) with the outbox as the provider, whose rows are what it was given."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import requests

from gateway.runtime import Gateway
from tests.integration.test_http_send import OTHER_LICENSEE, assert_error, outbox_rows
from tests.samples import NUMBERS, send_body
from tests.server import GatewayServer
from tests.waiting import wait_until


def later(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def status(server: GatewayServer, key: str, comm_id: str) -> dict:
    response = server.get(f"/api/sms/{comm_id}", key=key)
    assert response.status_code == 200, response.text
    return response.json()


def cancel(server: GatewayServer, key: str | None, comm_id: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.delete(f"{server.url}/api/sms/{comm_id}", headers=headers, timeout=30)


def test_a_send_15_s_ahead_is_scheduled_not_sent_at_4_s_and_sent_by_60_s(server: GatewayServer, gateway: Gateway,
                                                                       key: str) -> None:
    started = time.monotonic()
    response = server.post("/api/sendmessage", {**send_body(*NUMBERS[:2]), "SendAt": later(15)}, key=key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["Message"].startswith("Scheduled for delivery to 2 recipients at ")
    comm_id = body["CommId"]
    shown = status(server, key, comm_id)
    assert shown["Status"] == "Scheduled" and shown["SendAt"] and shown["PendingCount"] == 2

    time.sleep(max(0.0, 4 - (time.monotonic() - started)))
    assert outbox_rows(gateway, comm_id) == []
    assert status(server, key, comm_id)["Status"] == "Scheduled"

    rows = wait_until(lambda: len(found := outbox_rows(gateway, comm_id)) == 2 and found,
                      timeout=60 - (time.monotonic() - started), what="the scheduled send's two outbox rows")
    assert sorted(row["To"] for row in rows) == sorted(NUMBERS[:2])
    assert time.monotonic() - started >= 14  # not before its time (a second of clock rounding aside)
    assert wait_until(lambda: status(server, key, comm_id)["Status"] == "Sent", timeout=20, what="Sent")


def test_a_canceled_scheduled_send_never_reaches_the_provider(server: GatewayServer, gateway: Gateway,
                                                             key: str) -> None:
    started = time.monotonic()
    response = server.post("/api/sendmessage", {**send_body(*NUMBERS[:3]), "SendAt": later(8)}, key=key)
    assert response.status_code == 200, response.text
    comm_id = response.json()["CommId"]

    assert_error(cancel(server, None, comm_id), 401)
    canceled = cancel(server, key, comm_id)
    assert canceled.status_code == 200, canceled.text
    answer = canceled.json()
    assert (answer["CommId"], answer["CanceledCount"], answer["Status"]) == (comm_id, 3, "Canceled")
    assert answer["Reference"] == response.json()["Reference"] and "Canceled 3" in answer["Message"]

    time.sleep(max(0.0, 16 - (time.monotonic() - started)))  # past its SendAt, and its message has run
    assert outbox_rows(gateway, comm_id) == []
    shown = status(server, key, comm_id)
    assert (shown["Status"], shown["CanceledCount"], shown["PendingCount"]) == ("Canceled", 3, 0)
    assert {recipient["Status"] for recipient in shown["Recipients"]} == {"Canceled"}
    again = cancel(server, key, comm_id).json()
    assert (again["CanceledCount"], again["Status"]) == (0, "Canceled")


def test_a_cancel_of_what_was_sent_cancels_nothing_and_others_ids_are_404(server: GatewayServer, gateway: Gateway,
                                                                           key: str) -> None:
    sent = server.post("/api/sendmessage/immediate", send_body(*NUMBERS[:1]), key=key).json()
    answer = cancel(server, key, sent["CommId"]).json()
    assert (answer["CanceledCount"], answer["Status"]) == (0, "Sent")
    assert_error(cancel(server, key, uuid.uuid4().hex), 404, "NotFound")
    assert_error(cancel(server, key, "not-a-guid"), 404, "NotFound")
    theirs = gateway.keys.create(OTHER_LICENSEE, "other")[1]
    assert_error(cancel(server, theirs, sent["CommId"]), 404, "NotFound")


def test_send_at_and_valid_until_mistakes_are_400s_naming_the_field(server: GatewayServer, key: str) -> None:
    cases = [
        ("/api/sendmessage", {"SendAt": later(36 * 86400)}, "SendAt"),
        ("/api/sendmessage", {"SendAt": later(-120)}, "SendAt"),
        ("/api/sendmessage/immediate", {"SendAt": later(600)}, "SendAt"),
        ("/api/sendmessage", {"SendAt": later(600), "ValidUntil": later(300)}, "ValidUntil"),
        ("/api/sendmessage", {"ValidUntil": later(-1)}, "ValidUntil"),
        ("/api/sendmessage", {"SendAt": "next tuesday"}, "SendAt"),
    ]
    for path, timing, field in cases:
        assert_error(server.post(path, {**send_body(), **timing}, key=key), 400, field=field)


def test_a_send_at_just_past_sends_now(server: GatewayServer, gateway: Gateway, key: str) -> None:
    body = server.post("/api/sendmessage", {**send_body(), "SendAt": later(-20)}, key=key).json()
    assert body["Message"] == "Queued for delivery to 1 recipient; GSM-7, 1 segment"
    wait_until(lambda: len(outbox_rows(gateway, body["CommId"])) == 1, timeout=20, what="the outbox row")


def test_the_documents_show_send_at_valid_until_and_the_cancel_route(server: GatewayServer) -> None:
    page = requests.get(server.url + "/metadata", timeout=30).text
    assert "SendAt" in page and "ValidUntil" in page and "SMSCancel" in page and "SMSCancelResponse" in page
    document = requests.get(server.url + "/openapi.json", timeout=30).json()
    send = document["components"]["schemas"]["SMSSend"]["properties"]
    assert {"SendAt", "ValidUntil"} <= set(send)
    cancel_path = next(path for path in document["paths"] if path.startswith("/api/sms/{") and
                       "delete" in document["paths"][path])
    responses = document["paths"][cancel_path]["delete"]["responses"]
    assert responses["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SMSCancelResponse"}
    assert "404" in responses
