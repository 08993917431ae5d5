"""Replies over real HTTP: the gateway as users run it (``python -m devhost``, Azurite), the Twilio fake sending
what the gateway asks and texting back through the inbound webhook, signed as Twilio signs it, and the ACS fake
texting back through its Event Grid. A reply shows in ``Replies`` of the communication it answers, and only there.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any

import pytest
import requests
from azure.core.exceptions import AzureError
from twilio.request_validator import RequestValidator

from fakes.acs import AcsFake
from fakes.twilio import TwilioFake
from gateway.inbound import InboundBook, InboundMessage, InboundOutcome, InboundStore
from gateway.message_index import key_of
from gateway.reply_index import ReplyIndex, Sent
from gateway.runtime import Gateway
from gateway.storage import CommunicationStore, utcnow
from tests.integration.test_cli import cli
from tests.server import GatewayServer
from tests.twilio_host import twilio_env

INBOUND = "/api/providers/twilio/inbound"
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
EVENTS_KEY = secrets.token_urlsafe(32)
A = uuid.UUID("a1a1a1a1-0000-4000-8000-000000000001")
B = uuid.UUID("b2b2b2b2-0000-4000-8000-000000000002")


@pytest.fixture(scope="module")
def env(storage_connection: str, twilio: TwilioFake, port: int) -> dict[str, str]:
    return twilio_env(storage_connection, twilio, port=port, SMS_EVENTGRID_KEY=EVENTS_KEY)


@pytest.fixture(scope="module")
def server(server: GatewayServer, twilio: TwilioFake) -> GatewayServer:
    """The host, and the fake's inbound webhook pointed at it."""
    twilio.inbound_url = f"{server.url}{INBOUND}"
    return server


@pytest.fixture(scope="module")
def keys(gateway: Gateway) -> dict[uuid.UUID, str]:
    return {licensee: gateway.keys.create(licensee, "replies")[1] for licensee in (A, B)}


def number() -> str:
    """A US number no other test uses: each test has pairs of numbers of its own."""
    n = uuid.uuid4().int
    return f"+1415{2 + n % 8}{n // 8 % 10**6:06d}"


def send(server: GatewayServer, key: str, sender: str, *numbers: str, **flags: bool) -> dict[str, Any]:
    """An immediate send from ``sender`` to ``numbers``; the communication as GET shows it once it is Sent."""
    model = {"From": {"PhoneNumber": sender}, "To": [{"PhoneNumber": n} for n in numbers],
             "MessageBody": "Your appointment is on Tuesday at 10. Reply YES to confirm.", **flags}
    answer = server.post("/api/sendmessage/immediate", {"SMSModel": model}, key=key)
    assert answer.status_code == 200, answer.text
    return status(server, key, answer.json()["CommId"])


def status(server: GatewayServer, key: str, comm_id: str) -> dict[str, Any]:
    answer = server.get(f"/api/sms/{comm_id}", key=key)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_reply_appears_in_the_replies_of_the_communication_it_answers(
    server: GatewayServer, keys: dict[uuid.UUID, str], twilio: TwilioFake
) -> None:
    sender, patient, other = number(), number(), number()
    comm = send(server, keys[A], sender, patient, other, ReplyIsAllowed=True)

    posted = twilio.text(patient, sender, "Yes, see you then")
    assert (posted.answered, posted.content_type.split(";")[0], posted.text) == (200, "text/xml", TWIML)

    shown = status(server, keys[A], comm["CommId"])
    [reply] = shown["Replies"]
    assert reply["RecipientId"] == comm["Recipients"][0]["RecipientId"]
    assert (reply["From"], reply["To"], reply["Body"]) == (patient, sender, "Yes, see you then")
    assert reply["ReceivedAt"]
    assert all(r.get("Replied") is None for r in shown["Recipients"])  # not ReplyIsRequired: not shown


def test_a_repeated_inbound_message_is_one_reply(
    server: GatewayServer, keys: dict[uuid.UUID, str], twilio: TwilioFake
) -> None:
    sender, patient = number(), number()
    comm = send(server, keys[A], sender, patient)
    first = twilio.text(patient, sender, "Running late")
    again = twilio.again(first)
    assert (again.answered, again.text) == (200, TWIML)
    assert [r["Body"] for r in status(server, keys[A], comm["CommId"])["Replies"]] == ["Running late"]


def test_a_reply_required_communication_shows_who_replied(
    server: GatewayServer, keys: dict[uuid.UUID, str], twilio: TwilioFake
) -> None:
    sender, replied, silent = number(), number(), number()
    comm = send(server, keys[A], sender, replied, silent, ReplyIsRequired=True, ReplyIsAllowed=True)
    twilio.text(replied, sender, "YES")
    shown = status(server, keys[A], comm["CommId"])
    assert [r["Replied"] for r in shown["Recipients"]] == [True, False]


def test_a_reply_goes_to_the_latest_reply_allowed_communication(
    server: GatewayServer, keys: dict[uuid.UUID, str], twilio: TwilioFake
) -> None:
    sender, patient = number(), number()
    asked = send(server, keys[A], sender, patient, ReplyIsAllowed=True)
    reminder = send(server, keys[A], sender, patient)  # later, and not asking for a reply
    twilio.text(patient, sender, "Yes")
    assert [r["Body"] for r in status(server, keys[A], asked["CommId"])["Replies"]] == ["Yes"]
    assert status(server, keys[A], reminder["CommId"])["Replies"] == []


def test_another_licensee_never_sees_a_reply_and_a_shared_number_shows_it_to_neither(
    server: GatewayServer, keys: dict[uuid.UUID, str], twilio: TwilioFake, gateway: Gateway
) -> None:
    shared, own_b, person = number(), number(), number()
    of_b = send(server, keys[B], own_b, person)
    twilio.text(person, own_b, "for B")
    assert server.get(f"/api/sms/{of_b['CommId']}", key=keys[A]).status_code == 404
    assert [r["Body"] for r in status(server, keys[B], of_b["CommId"])["Replies"]] == ["for B"]

    first = send(server, keys[A], shared, person, ReplyIsAllowed=True)
    second = send(server, keys[B], shared, person, ReplyIsAllowed=True)
    posted = twilio.text(person, shared, "who is this?")
    assert posted.answered == 200
    assert status(server, keys[A], first["CommId"])["Replies"] == []
    assert status(server, keys[B], second["CommId"])["Replies"] == []
    stored = inbound_row(gateway, posted.sid)
    assert (stored["Match"], stored.get("CommId"), stored["Body"]) == ("Ambiguous", None, "who is this?")


def test_a_message_from_a_number_never_sent_to_is_kept_unmatched(
    server: GatewayServer, twilio: TwilioFake, gateway: Gateway
) -> None:
    posted = twilio.text(number(), number(), "hello?")
    assert (posted.answered, posted.text) == (200, TWIML)
    stored = inbound_row(gateway, posted.sid)
    assert (stored["Match"], stored["Processed"], stored["Body"]) == ("Unmatched", True, "hello?")


@pytest.mark.parametrize("forgery", ["wrong token", "no signature", "body changed"])
def test_a_forged_inbound_message_is_403_and_stores_nothing(
    server: GatewayServer, keys: dict[uuid.UUID, str], twilio: TwilioFake, gateway: Gateway, forgery: str
) -> None:
    sender, patient = number(), number()
    comm = send(server, keys[A], sender, patient)
    sid = "SM" + secrets.token_hex(16)
    form = {"MessageSid": sid, "SmsSid": sid, "AccountSid": twilio.account_sid, "From": patient, "To": sender,
            "Body": "STOP", "NumSegments": "1", "NumMedia": "0", "ApiVersion": "2010-04-01"}
    url = f"{server.url}{INBOUND}"
    signature = {"wrong token": RequestValidator("0" * 32).compute_signature(url, form), "no signature": None,
                 "body changed": RequestValidator(twilio.auth_token).compute_signature(url, {**form, "Body": "x"})}
    headers = {} if signature[forgery] is None else {"X-Twilio-Signature": signature[forgery]}
    answer = requests.post(url, data=form, headers=headers, timeout=30)
    assert answer.status_code == 403
    assert status(server, keys[A], comm["CommId"])["Replies"] == []
    assert inbound_row(gateway, sid) is None


def test_an_acs_sms_received_event_is_a_reply_too(
    server: GatewayServer, keys: dict[uuid.UUID, str], gateway: Gateway
) -> None:
    sender, patient = number(), number()
    comm = send(server, keys[A], sender, patient, ReplyIsAllowed=True)
    with AcsFake() as acs:
        grid = acs.subscribe(f"{server.url}/api/providers/acs/events?key={EVENTS_KEY}", duplicate_chance=1.0, seed=3)
        event = acs.text(patient, sender, "Confirmed, thanks")
        assert grid.wait_idle(30)
        assert grid.validated is True
    [reply] = status(server, keys[A], comm["CommId"])["Replies"]
    assert (reply["From"], reply["To"], reply["Body"]) == (patient, sender, "Confirmed, thanks")
    assert inbound_row(gateway, str(event.id), "acs")["Match"] == "Matched"


def inbound_row(gateway: Gateway, message_id: str, provider: str = "twilio") -> dict[str, Any] | None:
    table = gateway.clients.tables.get_table_client(gateway.settings.inbound_table)
    rows = list(table.query_entities("PartitionKey eq @pk and RowKey eq @rk",
                                     parameters={"pk": key_of(message_id), "rk": provider}))
    return dict(rows[0]) if rows else None


# --- keywords reach the opt-out list --------------------------------------------------------------------------------


def test_stop_and_start_change_the_list_of_every_licensee_that_sent_on_the_pair_once_each(
    server: GatewayServer, keys: dict[uuid.UUID, str], gateway: Gateway
) -> None:
    sender, person = number(), number()
    send(server, keys[A], sender, person)
    send(server, keys[B], sender, person)
    book = gateway.inbound
    stop = InboundMessage("twilio", "SM" + secrets.token_hex(16), person, sender, " stop ")
    assert book.receive(stop) is InboundOutcome.UNMATCHED  # two licensees: ambiguous, and shown to neither
    assert book.receive(stop) is InboundOutcome.DUPLICATE
    listed = {licensee: gateway.optouts.find(licensee, person) for licensee in (A, B)}
    assert {(entry.reason, entry.source) for entry in listed.values()} == {("STOP", "keyword")}
    assert book.receive(InboundMessage("twilio", "SM" + secrets.token_hex(16), person, sender, "START")) \
        is InboundOutcome.UNMATCHED
    assert gateway.optouts.find(A, person) is None and gateway.optouts.find(B, person) is None
    book.receive(InboundMessage("twilio", "SM" + secrets.token_hex(16), person, sender, "stop please"))
    assert gateway.optouts.find(A, person) is None


SENT_OR_LATER = {"Sent", "Delivered"}  # the fake's status callbacks may have arrived already


def creates_to(twilio: TwilioFake, phone: str) -> int:
    """How many Messages the fake created for ``phone``: a call it refused creates none."""
    with twilio.lock:
        return sum(1 for resource in twilio.resources.values() if resource["to"] == phone)


def test_stop_over_http_makes_the_next_send_opted_out_without_a_provider_call_and_start_undoes_it(
    server: GatewayServer, keys: dict[uuid.UUID, str], twilio: TwilioFake
) -> None:
    sender, other_sender, person, friend = number(), number(), number(), number()
    send(server, keys[A], sender, person)
    assert twilio.text(person, sender, "Stop").answered == 200

    # The next send, from another of the licensee's numbers (Twilio's own list is per number): no provider call.
    before = creates_to(twilio, person)
    comm = send(server, keys[A], other_sender, person, friend)
    states = {r["PhoneNumber"]: r["Status"] for r in comm["Recipients"]}
    assert states[person] == "OptedOut" and states[friend] in SENT_OR_LATER
    assert comm["FailedCount"] == 1 and creates_to(twilio, person) == before
    listed = server.get("/api/optouts", key=keys[A]).json()["OptOuts"]
    assert [(o["PhoneNumber"], o["Reason"], o["Source"]) for o in listed if o["PhoneNumber"] == person] == \
        [(person, "STOP", "keyword")]
    assert person not in {o["PhoneNumber"] for o in server.get("/api/optouts", key=keys[B]).json()["OptOuts"]}

    assert twilio.text(person, sender, "start").answered == 200
    again = send(server, keys[A], other_sender, person)
    assert again["Recipients"][0]["Status"] in SENT_OR_LATER and creates_to(twilio, person) == before + 1


def test_twilio_refusing_an_unsubscribed_recipient_ends_it_opted_out_and_lists_the_number(
    server: GatewayServer, keys: dict[uuid.UUID, str], twilio: TwilioFake
) -> None:
    sender, person = number(), number()
    twilio.unsubscribe(person, sender)  # the person texted STOP to that number in Twilio's own records only
    comm = send(server, keys[A], sender, person)
    [recipient] = comm["Recipients"]
    assert (recipient["Status"], recipient["ErrorCode"], comm["Status"]) == ("OptedOut", "21610", "Failed")
    listed = {o["PhoneNumber"]: o for o in server.get("/api/optouts", key=keys[A]).json()["OptOuts"]}
    assert (listed[person]["Reason"], listed[person]["Source"]) == ("21610", "twilio")


# --- reply-capable senders ----------------------------------------------------------------------------------------


def test_reply_required_from_an_alphanumeric_sender_is_a_400_naming_the_sender(
    server: GatewayServer, keys: dict[uuid.UUID, str]
) -> None:
    model = {"From": {"PhoneNumber": "Clinic"}, "To": [{"PhoneNumber": number()}], "MessageBody": "Reply YES",
             "ReplyIsRequired": True}
    answer = server.post("/api/sendmessage", {"SMSModel": model}, key=keys[A])
    assert answer.status_code == 400, answer.text
    [error] = answer.json()["ResponseStatus"]["Errors"]
    assert (error["FieldName"], error["ErrorCode"]) == ("SMSModel.From.PhoneNumber", "ReplyNotPossible")
    assert "alphanumeric" in error["Message"] and "'Clinic'" in error["Message"]


def test_reply_allowed_from_an_alphanumeric_sender_is_accepted_with_a_warning(
    server: GatewayServer, keys: dict[uuid.UUID, str]
) -> None:
    model = {"From": {"PhoneNumber": "Clinic"}, "To": [{"PhoneNumber": number()}], "MessageBody": "Hello",
             "ReplyIsAllowed": True}
    answer = server.post("/api/sendmessage", {"SMSModel": model}, key=keys[A])
    assert answer.status_code == 200, answer.text
    assert answer.json()["Message"].startswith(
        "Queued for delivery to 1 recipient; GSM-7, 1 segment. Replies cannot arrive")
    model["From"]["PhoneNumber"] = number()
    answer = server.post("/api/sendmessage", {"SMSModel": model}, key=keys[A])
    assert answer.json()["Message"] == "Queued for delivery to 1 recipient; GSM-7, 1 segment"


def test_a_message_is_stored_before_anything_can_fail_and_a_retry_finishes_the_work(
    server: GatewayServer, keys: dict[uuid.UUID, str], gateway: Gateway
) -> None:
    sender, patient = number(), number()
    comm = send(server, keys[A], sender, patient, ReplyIsAllowed=True)
    inbound = InboundStore(gateway.clients.tables, gateway.settings.inbound_table)
    index = ReplyIndex(gateway.clients.tables, gateway.settings.reply_index_table)
    broken = InboundBook(inbound, index, CommunicationStore(gateway.clients.tables, "NoSuchTable"),
                         window=timedelta(hours=72))
    message = InboundMessage("acs", f"Incoming_{secrets.token_hex(8)}", patient, sender, "On my way")
    with pytest.raises(AzureError):
        broken.receive(message)  # Event Grid is answered 503 and sends it again
    assert inbound_row(gateway, message.message_id, "acs")["Processed"] is False

    book = InboundBook(inbound, index, gateway.store, window=timedelta(hours=72))
    assert book.receive(message) is InboundOutcome.MATCHED
    assert book.receive(message) is InboundOutcome.DUPLICATE
    assert [r["Body"] for r in status(server, keys[A], comm["CommId"])["Replies"]] == ["On my way"]


def test_the_reply_index_writes_a_batch_in_one_transaction_and_row_by_row_when_it_is_refused(
    gateway: Gateway,
) -> None:
    index = ReplyIndex(gateway.clients.tables, gateway.settings.reply_index_table)
    sender, comm = number(), uuid.uuid4()
    people = [number() for _ in range(3)]
    sends = [(person, Sent(A, comm, i, utcnow(), reply_is_allowed=True)) for i, person in enumerate(people)]
    assert index.record(sender, sends) == 0
    assert [[(s.comm_id, s.index) for s in index.candidates(sender, p) if s.reply_is_allowed] for p in people] == \
        [[(comm, 0)], [(comm, 1)], [(comm, 2)]]
    # The same number twice in one batch: the service refuses the transaction; every row is still written.
    later = uuid.uuid4()
    again = [(people[0], Sent(B, later, 0, utcnow())), (people[0], Sent(B, later, 1, utcnow()))]
    assert index.record(sender, again) == 0
    assert {(s.licensee_id, s.comm_id) for s in index.candidates(sender, people[0])} == {(A, comm), (B, later)}
    assert index.record("Clinic", sends) == 0 and index.candidates("Clinic", people[0]) == []


def test_operators_see_the_messages_no_licensee_is_shown(
    server: GatewayServer, env: dict[str, str], keys: dict[uuid.UUID, str], twilio: TwilioFake
) -> None:
    sender, stranger, patient = number(), number(), number()
    send(server, keys[A], sender, patient, ReplyIsAllowed=True)
    twilio.text(stranger, sender, "Who is this?")
    twilio.text(patient, sender, "See you then")
    shown = cli(env, "inbound", "unattributed", "--hours", "1")
    assert shown.returncode == 0, shown.stderr
    assert "'Who is this?'" in shown.stdout and stranger in shown.stdout and "Unmatched" in shown.stdout
    assert "See you then" not in shown.stdout  # attributed: the licensee sees it in Replies


def test_help_is_recorded_as_a_keyword_and_changes_nothing_else(
    server: GatewayServer, keys: dict[uuid.UUID, str], gateway: Gateway, twilio: TwilioFake
) -> None:
    sender, patient = number(), number()
    comm = send(server, keys[A], sender, patient, ReplyIsAllowed=True)
    posted = twilio.text(patient, sender, " help ")
    assert posted.answered == 200 and posted.text == TWIML  # the gateway sends no automatic answer
    row = inbound_row(gateway, posted.form["MessageSid"])
    assert (row["Keyword"], row["Match"]) == ("Help", "Matched")
    assert gateway.optouts.find(A, patient) is None
    assert [r["Body"] for r in status(server, keys[A], comm["CommId"])["Replies"]] == [" help "]
