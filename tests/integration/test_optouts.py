"""The licensees' opt-out lists: the table over Azurite, delivery skipping listed numbers (asked per batch, so a
number listed after the send was accepted is skipped too), Twilio's 21610 listing a number, and the routes over
real HTTP (``python -m devhost``) with the Twilio fake, each licensee seeing only its own list.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from azure.core.pipeline.policies import SansIOHTTPPolicy

from fakes.twilio import TwilioFake
from gateway.auth import Principal
from gateway.connections import StorageClients
from gateway.models import SMSSend
from gateway.optouts import NUMBERS_PER_QUERY, OptOutList
from gateway.runtime import Gateway
from gateway.storage import CommStatus, RecipientState
from tests.http_fixtures import LICENSEE
from tests.integration.test_cli import cli
from tests.server import GatewayServer
from tests.twilio_host import twilio_env

OTHER_LICENSEE = uuid.UUID("6a1e0b7c-2d3f-4a5b-8c9d-0e1f2a3b4c5d")
UNSUBSCRIBED = "+15005550004"  # Twilio's test number for 21610, which the fake answers the same way


def number() -> str:
    """A US number no other test uses (the fake's rejections are per number)."""
    n = uuid.uuid4().int
    return f"+1415{2 + n % 8}{n // 8 % 10**6:06d}"


@pytest.fixture(scope="module")
def env(storage_connection: str, twilio: TwilioFake) -> dict[str, str]:
    return twilio_env(storage_connection, twilio)


@pytest.fixture(scope="module")
def other_key(gateway: Gateway) -> str:
    return gateway.keys.create(OTHER_LICENSEE, "another licensee")[1]


def sent_to(twilio: TwilioFake, to: str) -> int:
    return sum(message.to == to for message in twilio.messages)


# --- the table ---------------------------------------------------------------------------------------------------


def test_a_list_is_per_licensee_and_says_when_and_why(gateway: Gateway) -> None:
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    first, second = number(), number()
    gateway.optouts.add(mine, first, reason="STOP", source="inbound")
    gateway.optouts.add(mine, second, reason="21610", source="twilio")
    gateway.optouts.add(theirs, second, reason="api", source="api")

    listed = {entry.number: entry for entry in gateway.optouts.list(mine)}
    assert set(listed) == {first, second}
    assert (listed[first].reason, listed[first].source) == ("STOP", "inbound") and listed[first].at is not None
    assert gateway.optouts.suppressed(mine, [first, second, number()]) == {first, second}
    assert gateway.optouts.suppressed(theirs, [first, second]) == {second}

    gateway.optouts.remove(mine, first, source="inbound")
    gateway.optouts.remove(mine, first, source="inbound")  # not listed any more: nothing to do
    assert gateway.optouts.suppressed(mine, [first, second]) == {second}
    assert gateway.optouts.find(mine, first) is None and gateway.optouts.find(theirs, second) is not None


@pytest.mark.parametrize("count", [NUMBERS_PER_QUERY, NUMBERS_PER_QUERY + 1, 99])
def test_a_batch_of_any_size_is_looked_up_whole(gateway: Gateway, count: int) -> None:
    licensee = uuid.uuid4()
    numbers = [number() for _ in range(count)]
    listed = set(numbers[::4])
    for each in [*listed, number(), number()]:  # and two numbers the batch does not hold
        gateway.optouts.add(licensee, each, reason="STOP", source="inbound")
    assert gateway.optouts.suppressed(licensee, numbers) == listed


class Filters(SansIOHTTPPolicy):
    """The ``$filter`` of every table query the clients send."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_request(self, request: Any) -> None:
        query = parse_qs(urlsplit(request.http_request.url).query)
        self.seen.extend(query.get("$filter", []))


@pytest.mark.parametrize("count", [1, NUMBERS_PER_QUERY, NUMBERS_PER_QUERY + 1, 99])
def test_a_look_up_names_the_numbers_while_table_storage_allows_it_and_never_more_than_15_comparisons(
    gateway: Gateway, count: int
) -> None:
    """Azurite takes a filter of any length; Table Storage refuses more than 15 comparisons (the partition's
    included), so the shape of the query is what keeps the look-up working in Azure."""
    filters = Filters()
    clients = StorageClients.create(gateway.settings.storage, policies=[filters])
    optouts = OptOutList(clients.tables, gateway.settings.optouts_table)
    licensee, numbers = uuid.uuid4(), [number() for _ in range(count)]
    optouts.add(licensee, numbers[0], reason="STOP", source="keyword")
    assert optouts.suppressed(licensee, numbers) == {numbers[0]}
    [query] = filters.seen
    assert query.count(" eq ") <= 15
    named = query.count("RowKey eq ")
    assert named == (count if count <= 14 else 0), query


def test_a_list_never_written_suppresses_nothing(gateway: Gateway) -> None:
    missing = OptOutList(gateway.clients.tables, f"{gateway.settings.table_prefix}NoSuchTable")
    assert missing.suppressed(LICENSEE, [number()]) == set() and missing.list(LICENSEE) == []


# --- delivery ------------------------------------------------------------------------------------------------------


def queued_send(gateway: Gateway, licensee: uuid.UUID, *numbers: str) -> uuid.UUID:
    request = SMSSend.model_validate({"SMSModel": {"To": [{"PhoneNumber": n} for n in numbers],
                                                   "MessageBody": "Your appointment is at 9"}})
    return gateway.service.send(Principal("k", "tests", licensee), request, immediate=False).CommId


def test_a_number_listed_after_the_send_was_accepted_is_not_sent(gateway: Gateway, twilio: TwilioFake) -> None:
    licensee = uuid.uuid4()
    stays, leaves = number(), number()
    comm_id = queued_send(gateway, licensee, stays, leaves)
    gateway.optouts.add(licensee, leaves, reason="STOP", source="inbound")  # between accept and delivery

    report = gateway.delivery.deliver(comm_id)

    assert report is not None and (report.sent, report.failed, report.opted_out) == (1, 1, 1)
    assert (sent_to(twilio, stays), sent_to(twilio, leaves)) == (1, 0)
    snapshot = gateway.store.load(comm_id)
    assert snapshot is not None
    by_number = {r.phone_number: r for r in snapshot.all_recipients()}
    assert by_number[leaves].status is RecipientState.OPTED_OUT and by_number[leaves].attempts == 0
    assert by_number[leaves].error_code == "OptedOut"
    assert by_number[stays].status is RecipientState.SENT
    comm = snapshot.communication
    assert (comm.status, comm.sent_count, comm.failed_count) == (CommStatus.PARTIALLY_SENT, 1, 1)


def test_a_communication_whose_every_number_opted_out_fails_without_a_call(gateway: Gateway,
                                                                          twilio: TwilioFake) -> None:
    licensee = uuid.uuid4()
    numbers = [number(), number()]
    for each in numbers:
        gateway.optouts.add(licensee, each, reason="STOP", source="inbound")
    before = len(twilio.messages)
    comm_id = queued_send(gateway, licensee, *numbers)

    report = gateway.delivery.deliver(comm_id)

    assert report is not None and report.status is CommStatus.FAILED and report.opted_out == 2
    assert len(twilio.messages) == before
    assert gateway.delivery.deliver(comm_id) == report  # a redelivered message finds it final: nothing more


# --- over HTTP -----------------------------------------------------------------------------------------------------


def send_now(server: GatewayServer, key: str, *numbers: str) -> dict:
    model = {"To": [{"PhoneNumber": n} for n in numbers], "MessageBody": "Your code is 2468"}
    answer = server.post("/api/sendmessage/immediate", {"SMSModel": model}, key=key)
    assert answer.status_code == 200, answer.text
    return answer.json()


def status(server: GatewayServer, key: str, comm_id: str) -> dict:
    answer = server.get(f"/api/sms/{comm_id}", key=key)
    assert answer.status_code == 200, answer.text
    return answer.json()


def listed(server: GatewayServer, key: str) -> dict[str, dict]:
    answer = server.get("/api/optouts", key=key)
    assert answer.status_code == 200, answer.text
    return {entry["PhoneNumber"]: entry for entry in answer.json()["OptOuts"]}


def delete(server: GatewayServer, key: str, phone_number: str) -> requests.Response:
    return requests.delete(f"{server.url}/api/optouts/{quote(phone_number)}",
                           headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_a_number_the_api_lists_is_not_sent_until_it_is_removed(server: GatewayServer, key: str,
                                                                twilio: TwilioFake) -> None:
    quiet, other = number(), number()
    national = f"({quiet[2:5]}) {quiet[5:8]}-{quiet[8:]}"
    added = server.post("/api/optouts", {"phoneNumber": f"+1 {national}"}, key=key)
    assert added.status_code == 200, added.text
    entry = added.json()  # a camelCase body is answered in camelCase, as every route does
    assert entry["phoneNumber"] == quiet and entry["reason"] == "api" and entry["source"] == "api" and entry["at"]

    answer = send_now(server, key, quiet, other)
    assert answer["Status"] is False and "1 opted out" in answer["Message"] and "0 failed" in answer["Message"]
    comm = status(server, key, answer["CommId"])
    states = {r["PhoneNumber"]: r["Status"] for r in comm["Recipients"]}
    assert states == {quiet: "OptedOut", other: "Sent"}
    assert (comm["Status"], comm["SentCount"], comm["FailedCount"]) == ("PartiallySent", 1, 1)
    assert sent_to(twilio, quiet) == 0

    removed = delete(server, key, quiet)
    assert removed.status_code == 200, removed.text
    assert removed.json()["PhoneNumber"] == quiet
    assert quiet not in listed(server, key)
    assert send_now(server, key, quiet)["Status"] is True and sent_to(twilio, quiet) == 1
    assert delete(server, key, quiet).status_code == 404


def test_twilio_21610_ends_the_recipient_opted_out_and_lists_the_number(server: GatewayServer, key: str,
                                                                        twilio: TwilioFake) -> None:
    refused = number()
    twilio.reject(refused, 21610, "Attempt to send to unsubscribed recipient")
    answer = send_now(server, key, refused, UNSUBSCRIBED)

    comm = status(server, key, answer["CommId"])
    assert {r["Status"] for r in comm["Recipients"]} == {"OptedOut"}
    assert {r["ErrorCode"] for r in comm["Recipients"]} == {"21610"}
    assert comm["Status"] == "Failed" and "2 opted out" in answer["Message"]
    entries = listed(server, key)
    assert (entries[refused]["Reason"], entries[refused]["Source"]) == ("21610", "twilio")
    assert UNSUBSCRIBED in entries

    calls = sent_to(twilio, refused)
    again = send_now(server, key, refused)  # now the gateway's own list stops it: no call at all
    assert status(server, key, again["CommId"])["Recipients"][0]["ErrorCode"] == "OptedOut"
    assert sent_to(twilio, refused) == calls


def test_another_licensees_list_is_invisible(server: GatewayServer, key: str, other_key: str,
                                             twilio: TwilioFake) -> None:
    theirs = number()
    assert server.post("/api/optouts", {"PhoneNumber": theirs}, key=other_key).status_code == 200
    assert theirs not in listed(server, key) and theirs in listed(server, other_key)
    assert delete(server, key, theirs).status_code == 404
    assert send_now(server, key, theirs)["Status"] is True  # suppressed for the other licensee only
    assert theirs in listed(server, other_key)


@pytest.mark.parametrize(("body", "code"), [({"PhoneNumber": "12"}, "InvalidPhoneNumber"),
                                            ({"PhoneNumber": " "}, "NotEmpty"), ({}, "NotEmpty")])
def test_a_bad_number_is_a_400_naming_the_field(server: GatewayServer, key: str, body: dict, code: str) -> None:
    answer = server.post("/api/optouts", body, key=key)
    assert answer.status_code == 400, answer.text
    [error] = answer.json()["ResponseStatus"]["Errors"]
    assert (error["FieldName"], error["ErrorCode"]) == ("PhoneNumber", code)
    assert delete(server, key, "not-a-number").status_code == 400


def test_the_routes_need_an_api_key(server: GatewayServer) -> None:
    assert server.get("/api/optouts").status_code == 401
    assert server.post("/api/optouts", {"PhoneNumber": number()}).status_code == 401
    assert requests.delete(f"{server.url}/api/optouts/{quote(number())}", timeout=30).status_code == 401


# --- the CLI -------------------------------------------------------------------------------------------------------


def test_operators_list_add_and_remove(env: dict[str, str], gateway: Gateway) -> None:
    licensee = uuid.uuid4()
    target = number()
    added = cli(env, "optouts", "add", "--licensee", str(licensee), target, "--reason", "complaint")
    assert added.returncode == 0, added.stderr
    assert target not in added.stdout  # a number is never printed whole
    entry = gateway.optouts.find(licensee, target)
    assert entry is not None and (entry.reason, entry.source) == ("complaint", "cli")

    shown = cli(env, "optouts", "list", "--licensee", licensee.hex)
    assert shown.returncode == 0 and target in shown.stdout and "complaint" in shown.stdout
    assert "1 number(s)" in shown.stdout

    assert cli(env, "optouts", "remove", "--licensee", licensee.hex, target).returncode == 0
    assert gateway.optouts.find(licensee, target) is None
    assert cli(env, "optouts", "remove", "--licensee", licensee.hex, target).returncode == 1
    assert cli(env, "optouts", "add", "--licensee", licensee.hex, "12").returncode == 1
