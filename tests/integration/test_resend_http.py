"""Resend over real HTTP: the gateway as users run it (``python -m devhost``, Azurite, its queue worker), the
Twilio fake refusing one number at create and posting signed status callbacks that end another Undelivered, and
the opt-out list in between. Only the recipients the original did not reach are resent, once; the resend is
delivered by the worker; the links show on both status pages."""

from __future__ import annotations

import uuid

import pytest
import requests

from fakes.twilio import Fate, TwilioFake
from gateway.runtime import Gateway
from tests.http_fixtures import LICENSEE
from tests.integration.test_twilio_receipts import number, status
from tests.server import GatewayServer
from tests.twilio_host import twilio_env
from tests.waiting import wait_until

OTHER = uuid.UUID("9e9e9e9e-5c1b-4e57-9a43-1f7d2b3c4e5f")


@pytest.fixture(scope="module")
def env(storage_connection: str, twilio: TwilioFake, port: int) -> dict[str, str]:
    return twilio_env(storage_connection, twilio, port=port)


@pytest.fixture(scope="module")
def keys(gateway: Gateway) -> dict[uuid.UUID, str]:
    return {licensee: gateway.keys.create(licensee, "resend")[1] for licensee in (LICENSEE, OTHER)}


def shown(comm: dict) -> dict[str, str]:
    """Each recipient's number and shown status."""
    return {recipient["PhoneNumber"]: recipient["Status"] for recipient in comm["Recipients"]}


def settled(server: GatewayServer, key: str, comm_id: str, want: dict[str, str]) -> dict:
    """The communication once every recipient shows the status ``want`` gives it (receipts arrive on their own)."""
    def reached() -> dict | None:
        now = status(server, key, comm_id)
        return now if shown(now) == want else None

    return wait_until(reached, timeout=60, what=f"comm {comm_id} to show {want}")


def resend(server: GatewayServer, key: str, comm_id: str, idempotency_key: str | None = None) -> requests.Response:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return server.post(f"/api/sms/{comm_id}/resend", key=key, headers=headers)


def sent_to(twilio: TwilioFake, to: str) -> int:
    return sum(message.to == to for message in twilio.messages)


def test_resend_reaches_only_the_failed_and_undelivered_once_and_links_both_ways(
    server: GatewayServer, keys: dict[uuid.UUID, str], twilio: TwilioFake
) -> None:
    key = keys[LICENSEE]
    refused, undelivered, later_opted_out, delivered, opted_out = (number() for _ in range(5))
    twilio.reject(refused, 21211, f"The 'To' number {refused} is not a valid phone number.")
    twilio.fate(undelivered, Fate.undelivered())
    twilio.fate(later_opted_out, Fate.undelivered())
    assert server.post("/api/optouts", {"PhoneNumber": opted_out}, key=key).status_code == 200
    model = {"To": [{"PhoneNumber": n, "Name": f"N{i}"} for i, n in
                    enumerate((refused, undelivered, later_opted_out, delivered, opted_out))],
             "MessageBody": "Your appointment is at 10:00", "Notes": "resend-http",
             "LinkedObjectId": str(uuid.uuid4()), "From": {"PhoneNumber": "+15005550006", "Name": "Clinic"}}
    sent = server.post("/api/sendmessage/immediate", {"SMSModel": model}, key=key)
    assert sent.status_code == 200, sent.text
    original_id = sent.json()["CommId"]
    original = settled(server, key, original_id, {refused: "Failed", undelivered: "Undelivered",
                                                  later_opted_out: "Undelivered", delivered: "Delivered",
                                                  opted_out: "OptedOut"})
    assert original["ResentAs"] == [] and original.get("ResentFrom") is None

    # Meanwhile: the number Twilio refused is mended, the unreachable phone is back, one number opts out.
    twilio.stop_rejecting(refused)
    twilio.fate(undelivered, Fate())
    assert server.post("/api/optouts", {"PhoneNumber": later_opted_out}, key=key).status_code == 200

    first = resend(server, key, original_id, idempotency_key="resend-http-1")
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["Status"] is True
    assert answer["Message"] == (f"Resends 3 recipients of {uuid.UUID(original_id).hex}; queued for delivery; "
                                 "GSM-7, 1 segment each")
    again = resend(server, key, original_id, idempotency_key="resend-http-1")  # a client's retry
    assert (again.status_code, again.json()) == (200, answer)
    resend_id = answer["CommId"]

    comm = settled(server, key, resend_id, {refused: "Delivered", undelivered: "Delivered",
                                           later_opted_out: "OptedOut"})
    assert uuid.UUID(comm["ResentFrom"]) == uuid.UUID(original_id) and comm["ResentAs"] == []
    assert (comm["MessageBody"], comm["Notes"], comm["LinkedObjectId"]) == (
        original["MessageBody"], "resend-http", original["LinkedObjectId"])
    assert comm["From"] == original["From"]
    assert [r["Name"] for r in comm["Recipients"]] == ["N0", "N1", "N2"]
    assert comm["Reference"] == answer["Reference"] and comm["Status"] == "PartiallyDelivered"
    linked = status(server, key, original_id)
    assert [uuid.UUID(each) for each in linked["ResentAs"]] == [uuid.UUID(resend_id)]
    assert shown(linked) == shown(original)  # the original's own recipients are as they were
    # Each phone the original reached, or that is on the list, heard from the provider once at most.
    counts = {n: sent_to(twilio, n) for n in (refused, undelivered, later_opted_out, delivered, opted_out)}
    assert counts == {refused: 1, undelivered: 2, later_opted_out: 1, delivered: 1, opted_out: 0}

    # Another licensee's key: not found, exactly as its status page answers.
    theirs = resend(server, keys[OTHER], original_id)
    their_status = server.get(f"/api/sms/{original_id}", key=keys[OTHER])
    assert (theirs.status_code, theirs.json()) == (their_status.status_code, their_status.json())
    assert theirs.status_code == 404

    # Resending the original again: every number it would take was resent already.
    twice = resend(server, key, original_id)
    assert twice.status_code == 409 and twice.json()["ResponseStatus"]["ErrorCode"] == "AlreadyResent"
    assert uuid.UUID(resend_id).hex in twice.json()["ResponseStatus"]["Message"]
    # The resend itself: one OptedOut, the others delivered, so nothing to resend.
    nothing = resend(server, key, resend_id)
    assert nothing.status_code == 409 and nothing.json()["ResponseStatus"]["ErrorCode"] == "NothingToResend"
    assert [uuid.UUID(each) for each in status(server, key, original_id)["ResentAs"]] == [uuid.UUID(resend_id)]


def test_a_get_of_the_resend_path_is_405_and_a_bad_key_is_400(server: GatewayServer,
                                                               keys: dict[uuid.UUID, str]) -> None:
    comm_id = uuid.uuid4().hex
    wrong = server.get(f"/api/sms/{comm_id}/resend", key=keys[LICENSEE])
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST"
    bad = resend(server, keys[LICENSEE], comm_id, idempotency_key="has space")
    assert bad.status_code == 400 and bad.json()["ResponseStatus"]["ErrorCode"] == "InvalidIdempotencyKey"
    assert resend(server, keys[LICENSEE], comm_id).status_code == 404
    assert server.post(f"/api/sms/{comm_id}/resend").status_code == 401
