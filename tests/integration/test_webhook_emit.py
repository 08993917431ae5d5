"""Webhook events from every state change, against a real Azurite (issue 15, docs/webhooks.md).

Events are published into a table-backed sink of the tests' own (``RecordingSink``), which stores each event once by
id as the outbox does and remembers every publish call, so a test sees both what reached storage and what was asked.
A crash between a state change and its publish (a sink that fails, a process killed) leaves the change's mark, and
the sweep publishes the same events, same ids and same bodies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError, ServiceRequestError
from azure.data.tables import TableServiceClient

from bench.common import CountingPolicy
from gateway import worker
from gateway.connections import StorageClients
from gateway.delivery import ABANDONED, Delivery, ReceiptFollowUp
from gateway.inbound import InboundBook, InboundMessage, InboundOutcome, InboundStore
from gateway.message_index import MessageIndex
from gateway.optouts import OptOutList
from gateway.providers.base import Outcome
from gateway.receipts import Receipt, ReceiptBook, ReceiptOutcome, ReceiptState
from gateway.reply_index import ReplyIndex
from gateway.runtime import Gateway, use_gateway
from gateway.settings import Settings
from gateway.storage import MARK_ROW_PREFIX, Communication, CommunicationStore, RecipientSpec, utcnow
from gateway.webhook_events import EventType, WebhookEvent, event_id_for
from tests.integration.test_delivery import ScriptedProvider, make_delivery
from tests.integration.test_storage import make_comm

LINKED, SUITE = uuid.UUID("11111111-2222-4333-8444-555555555555"), uuid.UUID("99999999-8888-4777-8666-555555555555")


class Killed(BaseException):
    """The host stopping the process between a state change and its publish (not an error anyone catches)."""


class RecordingSink:
    """An EventSink backed by a real table: each event stored once by id (insert-if-absent), every call remembered.

    ``fail`` makes the next publishes raise a storage error, ``kill`` the next one stop the process; ``licensees``,
    when given, are the only ones with an endpoint (``wants``).
    """

    def __init__(self, tables: TableServiceClient, name: str, licensees: set[uuid.UUID] | None = None) -> None:
        self.table = tables.create_table_if_not_exists(name)
        self.licensees = licensees
        self.calls: list[list[WebhookEvent]] = []
        self.fail = 0
        self.kill = False

    def wants(self, licensee_id: uuid.UUID) -> bool:
        return self.licensees is None or licensee_id in self.licensees

    def publish(self, events: Sequence[WebhookEvent]) -> None:
        self.calls.append(list(events))
        if self.kill:
            self.kill = False
            raise Killed
        if self.fail:
            self.fail -= 1
            raise ServiceRequestError("injected: storage unreachable")
        for event in events:
            with contextlib.suppress(ResourceExistsError):  # stored before: left as it is
                self.table.create_entity({"PartitionKey": event.licensee_id.hex, "RowKey": event.event_id,
                                          "Type": event.type.value, "Body": json.dumps(event.body())})

    def stored(self, licensee_id: uuid.UUID) -> dict[str, dict[str, Any]]:
        """The licensee's stored events by id: their bodies."""
        rows = self.table.query_entities("PartitionKey eq @pk", parameters={"pk": licensee_id.hex})
        return {row["RowKey"]: json.loads(row["Body"]) for row in rows}

    def types(self, licensee_id: uuid.UUID) -> list[str]:
        return sorted(body["type"] for body in self.stored(licensee_id).values())

    def published_ids(self) -> list[str]:
        return [event.event_id for call in self.calls for event in call]


@pytest.fixture
def gateway(make_gateway) -> Gateway:
    return make_gateway()


@pytest.fixture
def sink(gateway: Gateway) -> RecordingSink:
    return RecordingSink(gateway.clients.worker_tables, f"{gateway.settings.communications_table}Events")


def comm_for(store: CommunicationStore, recipients: int, licensee: uuid.UUID | None = None) -> Communication:
    comm = make_comm(recipients, licensee, reference=uuid.uuid4().hex[:10].upper())
    first = secrets.randbelow(9_000) * 1000  # numbers no other communication of the run sent to (replies match)
    comm.recipients_spec = [RecipientSpec(f"+1415{first + n:07d}") for n in range(recipients)]
    comm.linked_object_id, comm.suite_id, comm.notes = LINKED, SUITE, "ward 7"
    store.create(comm, [])
    return comm


def marks(store: CommunicationStore, comm_id: uuid.UUID) -> list[dict[str, Any]]:
    query = "PartitionKey eq @pk and RowKey ge @first and RowKey lt @stop"
    return list(store._table.query_entities(query, parameters={"pk": comm_id.hex, "first": MARK_ROW_PREFIX,
                                                               "stop": chr(ord(MARK_ROW_PREFIX) + 1)}))


def with_events(gateway: Gateway, sink: RecordingSink, provider: Any, **options: Any) -> Delivery:
    return make_delivery(gateway.store, provider, events=sink, **options)


def recover(gateway: Gateway, sink: RecordingSink, *, after: timedelta | None = None) -> int:
    """One sweep through the gateway, ``after`` from now (by default once every mark is quiet): the marks it
    recovered, found through the open-work index."""
    after = timedelta(seconds=gateway.settings.sweep_after_seconds + 1) if after is None else after
    use_gateway(dataclasses.replace(gateway, events=sink))
    try:
        return worker.run_sweep(now=utcnow() + after).recovered
    finally:
        use_gateway(None)


# --- delivery --------------------------------------------------------------------------------------------------------

def test_a_delivery_publishes_each_recipients_outcome_and_the_completion_with_the_callers_ids(
    gateway: Gateway, sink: RecordingSink
) -> None:
    comm = comm_for(gateway.store, 2)
    provider = ScriptedProvider({comm.recipients_spec[1].phone_number: [Outcome.FAILED]})
    with_events(gateway, sink, provider).deliver(comm.comm_id)

    bodies = sink.stored(comm.licensee_id)
    assert sink.types(comm.licensee_id) == ["communication.completed", "message.failed", "message.sent"]
    by_type = {body["type"]: body for body in bodies.values()}
    sent = by_type["message.sent"]["data"]
    assert sent == {"CommId": comm.comm_id.hex, "Reference": comm.reference,
                    "RecipientId": uuid.uuid5(comm.comm_id, "recipient/0").hex,
                    "PhoneNumber": comm.recipients_spec[0].phone_number, "Status": "Sent", "ErrorCode": None,
                    "LinkedObjectId": LINKED.hex, "SuiteId": SUITE.hex, "Notes": "ward 7"}
    assert (by_type["message.failed"]["data"]["Status"], by_type["message.failed"]["data"]["ErrorCode"]) == \
        ("Failed", "E1")
    completed = by_type["communication.completed"]["data"]
    assert (completed["Status"], completed["SentCount"], completed["FailedCount"], completed["LinkedObjectId"]) == \
        ("PartiallySent", 1, 1, LINKED.hex)
    assert marks(gateway.store, comm.comm_id) == []  # published: nothing left for the sweep


def test_a_redelivered_or_retried_run_publishes_no_second_event(gateway: Gateway, sink: RecordingSink) -> None:
    comm = comm_for(gateway.store, 2)
    phone = comm.recipients_spec[1].phone_number
    provider = ScriptedProvider({phone: [Outcome.RETRY]})  # the second recipient waits for a retried run
    delivery = with_events(gateway, sink, provider)
    with pytest.raises(Exception, match="still pending"):
        delivery.deliver(comm.comm_id)
    assert sink.types(comm.licensee_id) == ["message.sent"]
    delivery.deliver(comm.comm_id)
    delivery.deliver(comm.comm_id)  # at-least-once queue delivery: the same message again
    ids = sink.published_ids()
    assert len(ids) == len(set(ids)) == 3
    assert sink.types(comm.licensee_id) == ["communication.completed", "message.sent", "message.sent"]


def test_an_opted_out_recipient_and_an_abandoned_one_are_told(gateway: Gateway, sink: RecordingSink) -> None:
    comm = comm_for(gateway.store, 3)
    optouts = OptOutList(gateway.clients.worker_tables, gateway.settings.optouts_table)
    optouts.add(comm.licensee_id, comm.recipients_spec[0].phone_number, reason="STOP", source="test")
    provider = ScriptedProvider({comm.recipients_spec[2].phone_number: [Outcome.RETRY]})
    delivery = with_events(gateway, sink, provider, optouts=optouts)
    with pytest.raises(Exception, match="still pending"):
        delivery.deliver(comm.comm_id)
    delivery.give_up(comm.comm_id, "Delivery abandoned after 5 attempts")

    by_type = {body["type"]: body["data"] for body in sink.stored(comm.licensee_id).values()}
    assert set(by_type) == {"message.opted_out", "message.sent", "message.failed", "communication.completed"}
    assert (by_type["message.opted_out"]["Status"], by_type["message.opted_out"]["ErrorCode"]) == \
        ("OptedOut", "OptedOut")
    assert (by_type["message.failed"]["ErrorCode"], by_type["communication.completed"]["Status"]) == \
        (ABANDONED, "PartiallySent")


def test_a_fanned_out_communication_is_completed_once_by_the_unit_that_settles_it(
    gateway: Gateway, sink: RecordingSink
) -> None:
    comm = comm_for(gateway.store, 150)
    delivery = with_events(gateway, sink, ScriptedProvider())
    units: list[range] = []
    delivery.deliver(comm.comm_id, fan_out=lambda parts, _delays: units.extend(parts))
    assert [len(unit) for unit in units] == [98, 52]  # a record is its rows, the header and the events' mark
    for unit in units:
        delivery.deliver(comm.comm_id, unit)
    types = sink.types(comm.licensee_id)
    assert (types.count("message.sent"), types.count("communication.completed")) == (150, 1)
    assert sink.published_ids().count(next(i for i, b in sink.stored(comm.licensee_id).items()
                                           if b["type"] == "communication.completed")) == 1


def test_units_delivered_at_once_complete_the_communication_once(gateway: Gateway, sink: RecordingSink) -> None:
    comm = comm_for(gateway.store, 300)
    delivery = with_events(gateway, sink, ScriptedProvider())
    units = delivery.units(300)
    with ThreadPoolExecutor(len(units)) as pool:
        list(pool.map(lambda unit: delivery.deliver(comm.comm_id, unit), units))
    types = sink.types(comm.licensee_id)
    assert (types.count("message.sent"), types.count("communication.completed")) == (300, 1)
    assert marks(gateway.store, comm.comm_id) == []
    assert gateway.store.load_header(comm.comm_id).status.value == "Sent"


def test_a_run_killed_before_its_record_is_told_once_by_the_run_that_finishes_it(gateway: Gateway,
                                                                                 sink: RecordingSink) -> None:
    comm = comm_for(gateway.store, 2)
    with pytest.raises(SystemExit):
        with_events(gateway, sink, ScriptedProvider(resend_is_safe=True, crash_after=1)).deliver(comm.comm_id)
    assert sink.calls == []  # claimed, maybe sent, nothing recorded: nothing to tell yet
    later = with_events(gateway, sink, ScriptedProvider(resend_is_safe=True),
                        clock=lambda: utcnow() + timedelta(seconds=120))  # past the dead worker's claim
    later.deliver(comm.comm_id)
    assert sorted(sink.published_ids()) == sorted([event_id_for(comm.comm_id, EventType.SENT, 0),
                                                   event_id_for(comm.comm_id, EventType.SENT, 1),
                                                   event_id_for(comm.comm_id, EventType.COMPLETED)])


def test_a_large_give_up_tells_each_recipient_and_the_completion_once(gateway: Gateway, sink: RecordingSink) -> None:
    comm = comm_for(gateway.store, 150)
    with_events(gateway, sink, ScriptedProvider()).give_up(comm.comm_id, "Delivery did not finish after 3 sweeps")
    published = [event.type for call in sink.calls for event in call]
    assert (published.count(EventType.FAILED), published.count(EventType.COMPLETED)) == (150, 1)
    assert len(sink.calls) == 2  # one publish per transaction of 98 recipients


def test_a_licensee_without_an_endpoint_costs_no_storage_call(storage_env: dict[str, str]) -> None:
    """Delivery with webhooks for a licensee the sink does not want makes exactly the calls it makes without."""
    counter = CountingPolicy()
    settings = Settings.from_env({"SMS_DEFAULT_SENDER": "+15005550006", **storage_env})
    gateway = Gateway.start(settings, clients=StorageClients.create(settings.storage, policies=[counter]))
    sink = RecordingSink(TableServiceClient.from_connection_string(storage_env["AzureWebJobsStorage"]),
                         f"{settings.communications_table}Events", licensees=set())
    costs = []
    for events in (None, sink):
        comm = comm_for(gateway.store, 2)
        counter.take()
        make_delivery(gateway.store, ScriptedProvider(), events=events).deliver(comm.comm_id)
        costs.append(counter.take())
    assert costs[0] == costs[1]
    assert sink.calls == []


def test_what_an_event_costs_in_storage_transactions(storage_env: dict[str, str]) -> None:
    """The figures docs/webhooks.md gives (the sink's own storage calls are the outbox's: not counted here).

    A delivery's mark rides in the change's own transaction; the one call an event batch adds is the mark's delete.
    A receipt's or a reply's mark is listed in the open-work index before the change (one upsert more), and a reply
    adds the point read of its communication's header (what the event carries).
    """
    counter = CountingPolicy()
    settings = Settings.from_env({"SMS_DEFAULT_SENDER": "+15005550006", **storage_env})
    gateway = Gateway.start(settings, clients=StorageClients.create(settings.storage, policies=[counter]))
    sink = RecordingSink(TableServiceClient.from_connection_string(storage_env["AzureWebJobsStorage"]),
                         f"{settings.communications_table}Events")
    index = MessageIndex(gateway.clients.worker_tables, settings.message_index_table)
    replies = ReplyIndex(gateway.clients.worker_tables, settings.reply_index_table)
    costs = []
    for events in (None, sink):
        comm = comm_for(gateway.store, 1)
        counter.take()
        make_delivery(gateway.store, ScriptedProvider(), events=events, replies=replies,
                      follow_up=ReceiptFollowUp(index=index)).deliver(comm.comm_id)
        deliver = counter.take()
        ReceiptBook(gateway.store, index, events=events).apply(
            Receipt("scripted", "p-1", "delivered", ReceiptState.DELIVERED, comm_id=comm.comm_id, index=0))
        receipt = counter.take()
        book = InboundBook(InboundStore(gateway.clients.worker_tables, settings.inbound_table), replies,
                           gateway.store, window=timedelta(hours=1), events=events)
        message = InboundMessage("scripted", uuid.uuid4().hex, comm.recipients_spec[0].phone_number, comm.sender,
                               "see you then")
        assert book.receive(message) is InboundOutcome.MATCHED
        costs.append((deliver, receipt, counter.take()))
    (deliver, receipt, reply), (deliver_events, receipt_events, reply_events) = costs
    assert deliver_events - deliver == {"table DELETE entity": 1}  # sent + completed: one mark, one publish
    # A receipt or a reply may change a communication already final, whose open-work row is gone: its mark is listed
    # in the open-work index before the change (one upsert) instead of riding in the change's transaction, and the
    # delete after the publish is that row's (issue 17: the sweep reads no scan of marks).
    assert receipt_events - receipt == {"table DELETE entity": 1, "table PUT entity": 1}
    assert reply_events - reply == {"table DELETE entity": 1, "table read": 1, "table PUT entity": 1}
    assert reply - reply_events == {}  # the reply row is one upsert either way
    assert len(sink.calls) == 3


# --- receipts and replies --------------------------------------------------------------------------------------------

def test_a_final_receipt_is_one_event_and_a_duplicate_none(gateway: Gateway, sink: RecordingSink) -> None:
    comm = comm_for(gateway.store, 2)
    index = MessageIndex(gateway.clients.worker_tables, gateway.settings.message_index_table)
    with_events(gateway, sink, ScriptedProvider(), follow_up=ReceiptFollowUp(index=index)).deliver(comm.comm_id)
    book = ReceiptBook(gateway.store, index, events=sink)
    calls = len(sink.calls)

    def apply(message_id: str, status: str, state: ReceiptState | None, **fields: Any) -> ReceiptOutcome:
        return book.apply(Receipt("scripted", message_id, status, state, **fields))

    assert apply("p-1", "sent", ReceiptState.SENT) is ReceiptOutcome.APPLIED  # not final: nothing new to tell
    assert apply("p-1", "delivered", ReceiptState.DELIVERED) is ReceiptOutcome.APPLIED
    assert apply("p-1", "delivered", ReceiptState.DELIVERED) is ReceiptOutcome.DUPLICATE
    assert apply("p-1", "undelivered", ReceiptState.UNDELIVERED) is ReceiptOutcome.RECORDED  # the first final wins
    assert apply("p-2", "undelivered", ReceiptState.UNDELIVERED, error_code="30003") is ReceiptOutcome.APPLIED
    assert len(sink.calls) == calls + 2
    by_type = {body["type"]: body["data"] for body in sink.stored(comm.licensee_id).values()}
    assert (by_type["message.delivered"]["Status"], by_type["message.delivered"]["PhoneNumber"]) == \
        ("Delivered", comm.recipients_spec[0].phone_number)
    assert (by_type["message.undelivered"]["ErrorCode"], by_type["message.undelivered"]["LinkedObjectId"]) == \
        ("30003", LINKED.hex)


def test_a_reply_is_told_once_with_what_was_said(gateway: Gateway, sink: RecordingSink) -> None:
    comm = comm_for(gateway.store, 1)
    replies = ReplyIndex(gateway.clients.worker_tables, gateway.settings.reply_index_table)
    with_events(gateway, sink, ScriptedProvider(), replies=replies).deliver(comm.comm_id)
    book = InboundBook(InboundStore(gateway.clients.worker_tables, gateway.settings.inbound_table), replies,
                       gateway.store, window=timedelta(hours=1), events=sink)
    message = InboundMessage("twilio", "SM" + uuid.uuid4().hex, comm.recipients_spec[0].phone_number, comm.sender,
                             "Running late")
    assert book.receive(message) is InboundOutcome.MATCHED
    assert book.receive(message) is InboundOutcome.DUPLICATE
    reply = [body for body in sink.stored(comm.licensee_id).values() if body["type"] == "message.reply"]
    assert len(reply) == 1 and len([e for call in sink.calls for e in call if e.type is EventType.REPLY]) == 1
    data = reply[0]["data"]
    assert (data["From"], data["To"], data["Body"], data["Reference"], data["SuiteId"]) == \
        (message.sender, comm.sender, "Running late", comm.reference, SUITE.hex)
    assert data["ReceivedAt"].endswith("Z")


# --- durability: a change whose publish did not happen --------------------------------------------------------------

def test_a_failed_publish_leaves_the_change_written_and_the_sweep_publishes_the_same_events(
    gateway: Gateway, sink: RecordingSink
) -> None:
    comm = comm_for(gateway.store, 2)
    sink.fail = 1
    report = with_events(gateway, sink, ScriptedProvider()).deliver(comm.comm_id)
    assert report is not None and report.sent == 2  # delivery goes on: the events wait for the sweep
    asked = {event.event_id: event.body() for event in sink.calls[0]}
    assert sink.stored(comm.licensee_id) == {} and len(marks(gateway.store, comm.comm_id)) == 1

    assert recover(gateway, sink, after=timedelta(0)) == 0  # too fresh
    assert recover(gateway, sink) == 1
    assert sink.stored(comm.licensee_id) == asked  # the same ids, the same bodies
    assert marks(gateway.store, comm.comm_id) == []
    assert recover(gateway, sink) == 0


def test_a_process_killed_between_the_change_and_its_publish_loses_nothing(gateway: Gateway,
                                                                           sink: RecordingSink) -> None:
    comm = comm_for(gateway.store, 1)
    sink.kill = True
    with pytest.raises(Killed):
        with_events(gateway, sink, ScriptedProvider()).deliver(comm.comm_id)
    asked = {event.event_id: event.body() for event in sink.calls[0]}
    assert gateway.store.load_header(comm.comm_id).status.value == "Sent"
    assert recover(gateway, sink) == 1
    assert sink.stored(comm.licensee_id) == asked
    assert sorted(body["type"] for body in asked.values()) == ["communication.completed", "message.sent"]


def test_a_receipt_whose_publish_failed_is_recovered_and_its_repeat_adds_nothing(gateway: Gateway,
                                                                                 sink: RecordingSink) -> None:
    comm = comm_for(gateway.store, 1)
    with_events(gateway, sink, ScriptedProvider()).deliver(comm.comm_id)
    book = ReceiptBook(gateway.store, events=sink)
    delivered = Receipt("scripted", "p-1", "delivered", ReceiptState.DELIVERED, comm_id=comm.comm_id, index=0)
    sink.fail = 1
    assert book.apply(delivered) is ReceiptOutcome.APPLIED  # stored, answered 2xx: the provider need not retry
    failed_call = {event.event_id: event.body() for event in sink.calls[-1]}
    assert book.apply(delivered) is ReceiptOutcome.DUPLICATE
    assert recover(gateway, sink) == 1
    stored = sink.stored(comm.licensee_id)
    assert {key: stored[key] for key in failed_call} == failed_call
    assert sink.types(comm.licensee_id) == ["communication.completed", "message.delivered", "message.sent"]


def test_a_reply_whose_publish_failed_is_recovered(gateway: Gateway, sink: RecordingSink) -> None:
    comm = comm_for(gateway.store, 1)
    replies = ReplyIndex(gateway.clients.worker_tables, gateway.settings.reply_index_table)
    with_events(gateway, sink, ScriptedProvider(), replies=replies).deliver(comm.comm_id)
    book = InboundBook(InboundStore(gateway.clients.worker_tables, gateway.settings.inbound_table), replies,
                       gateway.store, window=timedelta(hours=1), events=sink)
    sink.fail = 1
    assert book.receive(InboundMessage("acs", uuid.uuid4().hex, comm.recipients_spec[0].phone_number, comm.sender,
                                       "ok")) is InboundOutcome.MATCHED
    asked = {event.event_id: event.body() for event in sink.calls[-1]}
    assert recover(gateway, sink) == 1
    assert {key: value for key, value in sink.stored(comm.licensee_id).items() if key in asked} == asked


def test_the_sweep_recovers_events_of_quiet_marks_through_the_gateway(gateway: Gateway, sink: RecordingSink) -> None:
    comm = comm_for(gateway.store, 1)
    sink.fail = 1
    with_events(gateway, sink, ScriptedProvider()).deliver(comm.comm_id)
    use_gateway(dataclasses.replace(gateway, events=sink))
    try:
        worker.sweep(now=utcnow())
        assert sink.stored(comm.licensee_id) == {}  # the mark is younger than SMS_SWEEP_AFTER_SECONDS
        worker.sweep(now=utcnow() + timedelta(seconds=gateway.settings.sweep_after_seconds + 1))
    finally:
        use_gateway(None)
    assert sink.types(comm.licensee_id) == ["communication.completed", "message.sent"]
    assert marks(gateway.store, comm.comm_id) == []
