"""Receipts against a real Azurite: each receipt lands once, forward only, whatever the order, duplicates and
races, including before delivery recorded the send; counts and overall status come out right, fanned out too.

Delivery runs with the gateway's real follow-up parts (the message-id index); the receipt book is the one the
provider routes call (``Gateway.receipts``). docs/delivery.md, "Receipts", has the rules these tests hold.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError

from bench.common import CountingPolicy
from gateway.connections import StorageClients
from gateway.delivery import Delivery, ReceiptFollowUp, RetryLater
from gateway.message_index import MessageIndex
from gateway.providers.base import Outcome
from gateway.receipts import Receipt, ReceiptBook, ReceiptOutcome, ReceiptState
from gateway.runtime import Gateway
from gateway.settings import Settings
from gateway.status import describe
from gateway.storage import CommStatus, CommunicationStore, ReceiptView, RecipientState
from tests.integration.test_delivery import ScriptedProvider, make_delivery, stored
from tests.integration.test_fan_out import units_of

SENT, DELIVERED, UNDELIVERED, FAILED = (ReceiptState.SENT, ReceiptState.DELIVERED, ReceiptState.UNDELIVERED,
                                        ReceiptState.FAILED)


@dataclass
class Parts:
    gateway: Gateway
    store: CommunicationStore
    index: MessageIndex
    book: ReceiptBook

    def delivery(self, provider: Any, store: Any = None, **options: Any) -> Delivery:
        return make_delivery(store or self.store, provider, follow_up=ReceiptFollowUp(index=self.index), **options)


@pytest.fixture
def parts(make_gateway) -> Parts:
    gateway = make_gateway()
    index = MessageIndex(gateway.clients.worker_tables, gateway.settings.message_index_table)
    return Parts(gateway, gateway.store, index, gateway.receipts)


def receipt(message_id: str, status: str, state: ReceiptState | None, **fields: Any) -> Receipt:
    return Receipt(provider="scripted", message_id=message_id, provider_status=status, state=state, **fields)


def sent_comm(parts: Parts, recipients: int, script: dict[str, list[Outcome]] | None = None):
    """A communication delivered through a scripted provider: its message ids are p-1, p-2, ... in order."""
    comm = stored(parts.store, recipients)
    provider = ScriptedProvider({comm.recipients_spec[int(i)].phone_number: outcomes
                                 for i, outcomes in (script or {}).items()})
    parts.delivery(provider).deliver(comm.comm_id)
    return comm


def shown(parts: Parts, comm_id: uuid.UUID):
    snapshot = parts.store.load(comm_id)
    assert snapshot is not None
    return describe(snapshot)


def partition_rows(store: CommunicationStore, comm_id: uuid.UUID) -> dict[str, Any]:
    return {e["RowKey"]: e for e in store._table.query_entities("PartitionKey eq @pk", parameters={"pk": comm_id.hex})}


@pytest.mark.parametrize("order", [["queued", "sent", "delivered"], ["delivered", "sent", "queued"],
                                   ["sent", "delivered", "queued", "sent", "delivered"]])
def test_receipts_in_any_order_and_repeated_end_delivered(parts: Parts, order: list[str]) -> None:
    comm = sent_comm(parts, 1)
    states = {"queued": None, "sent": SENT, "delivered": DELIVERED}
    outcomes = [parts.book.apply(receipt("p-1", status, states[status], comm_id=comm.comm_id, index=0))
                for status in order]

    assert outcomes.count(ReceiptOutcome.APPLIED) == (2 if order.index("sent") < order.index("delivered") else 1)
    assert outcomes[len(set(order)):] == [ReceiptOutcome.DUPLICATE] * (len(order) - len(set(order)))
    status = shown(parts, comm.comm_id)
    assert (status.Status, status.DeliveredCount, status.SentCount) == ("Delivered", 1, 1)
    assert status.Recipients[0].Status == "Delivered" and status.Recipients[0].ReceiptAt is not None
    receipt_row = partition_rows(parts.store, comm.comm_id)["s00000"]
    assert sorted(receipt_row["Seen"].split()) == sorted(set(order))


def test_a_duplicate_writes_nothing(parts: Parts) -> None:
    comm = sent_comm(parts, 1)
    parts.book.apply(receipt("p-1", "delivered", DELIVERED))
    before = partition_rows(parts.store, comm.comm_id)
    assert parts.book.apply(receipt("p-1", "delivered", DELIVERED)) is ReceiptOutcome.DUPLICATE
    after = partition_rows(parts.store, comm.comm_id)
    assert {key: row.metadata["etag"] for key, row in after.items()} == \
        {key: row.metadata["etag"] for key, row in before.items()}


def test_the_first_final_receipt_wins_and_counts_once(parts: Parts) -> None:
    comm = sent_comm(parts, 2)
    assert parts.book.apply(receipt("p-1", "undelivered", UNDELIVERED, error_code="30003",
                                    error_message="Unreachable destination handset")) is ReceiptOutcome.APPLIED
    assert parts.book.apply(receipt("p-1", "delivered", DELIVERED)) is ReceiptOutcome.RECORDED
    status = shown(parts, comm.comm_id)
    first = status.Recipients[0]
    assert (first.Status, first.ErrorCode, first.ErrorMessage) == ("Undelivered", "30003",
                                                                   "Unreachable destination handset")
    assert (status.Status, status.UndeliveredCount, status.DeliveredCount) == ("Sent", 1, 0)  # p-2: no receipt yet
    header = parts.store.header_counts(comm.comm_id)
    assert header is not None and header.receipts == (0, 1, 0)


def test_counts_and_overall_status_with_mixed_outcomes(parts: Parts) -> None:
    comm = sent_comm(parts, 4, {"3": [Outcome.FAILED]})  # p-1..p-3 accepted, the fourth refused
    assert parts.store.load_header(comm.comm_id).status is CommStatus.PARTIALLY_SENT
    parts.book.apply(receipt("p-1", "delivered", DELIVERED))
    parts.book.apply(receipt("p-2", "undelivered", UNDELIVERED, error_code="30005"))
    assert parts.store.load_header(comm.comm_id).status is CommStatus.PARTIALLY_SENT  # p-3 still only Sent
    parts.book.apply(receipt("p-3", "failed", FAILED, error_code="30008"))

    status = shown(parts, comm.comm_id)
    assert status.Status == "PartiallyDelivered"
    assert [r.Status for r in status.Recipients] == ["Delivered", "Undelivered", "Failed", "Failed"]
    assert [r.ErrorCode for r in status.Recipients] == [None, "30005", "30008", "E1"]
    assert (status.SentCount, status.FailedCount, status.PendingCount) == (3, 1, 0)  # as before receipts
    assert (status.DeliveredCount, status.UndeliveredCount) == (1, 1)
    header = parts.store.header_counts(comm.comm_id)
    assert header is not None and header.receipts == (1, 1, 1)


def test_all_undelivered_is_undelivered_and_all_delivered_is_delivered(parts: Parts) -> None:
    comm = sent_comm(parts, 2)
    for message_id in ("p-1", "p-2"):
        parts.book.apply(receipt(message_id, "undelivered", UNDELIVERED))
    assert parts.store.load_header(comm.comm_id).status is CommStatus.UNDELIVERED


def test_an_unknown_message_id_is_unknown_and_writes_nothing(parts: Parts) -> None:
    comm = sent_comm(parts, 1)
    before = partition_rows(parts.store, comm.comm_id)
    assert parts.book.apply(receipt("SM-not-ours", "delivered", DELIVERED)) is ReceiptOutcome.UNKNOWN
    # named by a query string, but the recipient's recorded message is another: not this recipient's receipt
    assert parts.book.apply(receipt("SM-other", "delivered", DELIVERED, comm_id=comm.comm_id, index=0)) \
        is ReceiptOutcome.UNKNOWN
    assert parts.book.apply(receipt("p-1", "delivered", DELIVERED, comm_id=comm.comm_id, index=1)) \
        is ReceiptOutcome.UNKNOWN  # one past the last recipient
    assert ReceiptBook(parts.store).apply(receipt("p-1", "delivered", DELIVERED)) is ReceiptOutcome.UNKNOWN  # no index
    assert parts.book.apply(receipt("SM-x", "delivered", DELIVERED, comm_id=comm.comm_id)) is ReceiptOutcome.UNKNOWN
    assert parts.book.apply(receipt("SM-x", "delivered", DELIVERED, to=comm.recipients_spec[0].phone_number)) \
        is ReceiptOutcome.UNKNOWN  # a number without its communication names nobody
    assert parts.book.apply(receipt("p-1", "delivered", DELIVERED, comm_id=uuid.uuid4(), index=0)) \
        is ReceiptOutcome.UNKNOWN
    assert partition_rows(parts.store, comm.comm_id).keys() == before.keys()


def test_a_report_found_by_comm_id_and_number_lands(parts: Parts) -> None:
    """ACS: the report names the CommId (its tag) and the number, not our index."""
    comm = sent_comm(parts, 3)
    number = comm.recipients_spec[2].phone_number
    found = receipt("acs-not-indexed", "Delivered", DELIVERED, comm_id=comm.comm_id, to=number)
    assert parts.book.apply(found) is ReceiptOutcome.UNKNOWN  # the recipient's own message is p-3
    assert parts.book.apply(receipt("p-3", "Delivered", DELIVERED, comm_id=comm.comm_id, to=number)) \
        is ReceiptOutcome.APPLIED
    index = MessageIndex(parts.gateway.clients.tables, "NoSuchTable")  # not through the index: by the number
    book = ReceiptBook(parts.store, index)
    assert book.apply(receipt("p-3", "Failed", FAILED, comm_id=comm.comm_id, to=number[1:])) \
        is ReceiptOutcome.RECORDED
    assert book.apply(receipt("p-9", "Delivered", DELIVERED, comm_id=comm.comm_id, to="+15550000000")) \
        is ReceiptOutcome.UNKNOWN
    assert [r.Status for r in shown(parts, comm.comm_id).Recipients] == ["Sent", "Sent", "Delivered"]


def test_a_receipt_on_a_recipient_delivery_recorded_failed_is_recorded_and_moves_nothing(parts: Parts) -> None:
    comm = sent_comm(parts, 2, {"0": [Outcome.FAILED]})
    assert parts.book.apply(receipt("p-1", "delivered", DELIVERED, comm_id=comm.comm_id, index=0)) \
        is ReceiptOutcome.RECORDED
    status = shown(parts, comm.comm_id)
    assert [r.Status for r in status.Recipients] == ["Failed", "Sent"] and status.DeliveredCount == 0


class ReceiptDuringRecord:
    """A CommunicationStore whose first ``save`` of a Sent recipient lets a receipt arrive before it writes:
    the provider's callback landing between its answer and delivery's record."""

    def __init__(self, store: CommunicationStore, arrive: Callable[[], object]) -> None:
        self._store = store
        self._arrive: Callable[[], object] | None = arrive
        self.outcomes: list[object] = []

    def save(self, comm, recipients, **options) -> None:
        if self._arrive is not None and any(r.status is RecipientState.SENT for r in recipients):
            arrive, self._arrive = self._arrive, None
            self.outcomes.append(arrive())
        self._store.save(comm, recipients, **options)

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


@pytest.mark.parametrize("state", [DELIVERED, UNDELIVERED])
def test_a_receipt_before_the_record_is_kept_counted_and_not_overwritten(parts: Parts, state) -> None:
    comm = stored(parts.store, 1)
    racing = ReceiptDuringRecord(parts.store, lambda: parts.book.apply(receipt("p-1", state.value.lower(), state)))
    parts.delivery(ScriptedProvider(), store=racing).deliver(comm.comm_id)

    assert racing.outcomes == [ReceiptOutcome.APPLIED]  # matched through the index, written before the record
    status = shown(parts, comm.comm_id)
    assert status.Recipients[0].Status == state.value and status.Recipients[0].ProviderMessageId == "p-1"
    assert status.Status == state.value  # settled once delivery's record made it final
    header = parts.store.header_counts(comm.comm_id)
    assert header is not None and header.receipts.final == 1 and header.status.value == state.value


class SettleFailsOnce(ReceiptDuringRecord):
    """As ReceiptDuringRecord, and storage fails the settle's read once, after the final record."""

    failed = False

    def header_and_marks(self, comm_id: uuid.UUID):  # the settle's read (with the partition's webhook marks)
        if not self.failed:
            self.failed = True
            raise ServiceRequestError("storage unreachable")
        return self._store.header_and_marks(comm_id)


def test_a_settle_storage_refused_is_done_by_the_redelivered_message(parts: Parts) -> None:
    comm = stored(parts.store, 1)
    racing = SettleFailsOnce(parts.store, lambda: parts.book.apply(receipt("p-1", "delivered", DELIVERED)))
    with pytest.raises(ServiceRequestError):  # the run raises: the host redelivers its message
        parts.delivery(ScriptedProvider(), store=racing).deliver(comm.comm_id)
    assert parts.store.load_header(comm.comm_id).status is CommStatus.SENT
    parts.delivery(ScriptedProvider()).deliver(comm.comm_id)
    assert parts.store.load_header(comm.comm_id).status is CommStatus.DELIVERED


class RaceOnRead:
    """A CommunicationStore whose next ``receipt_view`` lets another receipt land after reading."""

    def __init__(self, store: CommunicationStore, meanwhile: Callable[[], object]) -> None:
        self._store = store
        self._meanwhile: Callable[[], object] | None = meanwhile

    def receipt_view(self, comm_id: uuid.UUID, index: int) -> ReceiptView | None:
        view = self._store.receipt_view(comm_id, index)
        meanwhile, self._meanwhile = self._meanwhile, None
        if meanwhile is not None:
            meanwhile()
        return view

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


def test_two_receipts_for_one_recipient_at_once_both_land(parts: Parts) -> None:
    comm = sent_comm(parts, 2)
    other = ReceiptBook(parts.store)
    late = ReceiptBook(RaceOnRead(parts.store, lambda: other.apply(receipt("p-1", "sent", SENT, comm_id=comm.comm_id,
                                                                           index=0))))
    assert late.apply(receipt("p-1", "delivered", DELIVERED, comm_id=comm.comm_id, index=0)) \
        is ReceiptOutcome.APPLIED
    row = partition_rows(parts.store, comm.comm_id)["s00000"]
    assert (sorted(row["Seen"].split()), row["State"]) == (["delivered", "sent"], "Delivered")

    racing_finals = ReceiptBook(RaceOnRead(parts.store, lambda: other.apply(
        receipt("p-2", "delivered", DELIVERED, comm_id=comm.comm_id, index=1))))
    assert racing_finals.apply(receipt("p-2", "undelivered", UNDELIVERED, comm_id=comm.comm_id, index=1)) \
        is ReceiptOutcome.RECORDED  # the other landed first: the first final wins, both are recorded
    header = parts.store.header_counts(comm.comm_id)
    assert header is not None and header.receipts == (2, 0, 0) and header.status is CommStatus.DELIVERED


def test_many_receipts_at_once_on_threads_all_land_and_count_once(parts: Parts) -> None:
    comm = sent_comm(parts, 1)
    statuses = [("accepted", None), ("queued", None), ("sending", None), ("sent", SENT), ("delivered", DELIVERED),
                ("undelivered", UNDELIVERED)]
    outcomes: list[ReceiptOutcome] = []
    errors: list[BaseException] = []

    def land(status: str, state: ReceiptState | None) -> None:
        try:
            outcomes.append(ReceiptBook(parts.store).apply(receipt("p-1", status, state, comm_id=comm.comm_id,
                                                                   index=0)))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=land, args=pair) for pair in statuses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == [] and ReceiptOutcome.DUPLICATE not in outcomes
    row = partition_rows(parts.store, comm.comm_id)["s00000"]
    assert sorted(row["Seen"].split()) == sorted(status for status, _ in statuses)
    header = parts.store.header_counts(comm.comm_id)
    assert header is not None and header.receipts.final == 1
    assert header.status.value == row["State"] and row["State"] in {"Delivered", "Undelivered"}


def test_a_fanned_out_communication_counts_receipts_from_units_and_receipts_in_any_order(parts: Parts) -> None:
    comm = stored(parts.store, 250)
    provider = ScriptedProvider({comm.recipients_spec[5].phone_number: [Outcome.FAILED]})
    delivery = parts.delivery(provider)
    units = units_of(delivery, comm.comm_id)
    delivery.deliver(comm.comm_id, units[0])
    for n in range(1, 100):  # the first unit's receipts, before the other units ran
        parts.book.apply(receipt(f"p-{n}", "delivered", DELIVERED))
    for unit in units[1:]:
        delivery.deliver(comm.comm_id, unit)
        assert not parts.store.load_header(comm.comm_id).status.value.endswith("Delivered")
    for n in range(100, 251):  # p-6, the refused one's, is not indexed: unknown
        parts.book.apply(receipt(f"p-{n}", "delivered", DELIVERED))

    status = shown(parts, comm.comm_id)
    assert (status.SentCount, status.FailedCount, status.DeliveredCount) == (249, 1, 249)
    assert status.Status == "PartiallyDelivered"
    header = parts.store.header_counts(comm.comm_id)
    assert header is not None and (header.status, header.receipts.delivered) == (CommStatus.PARTIALLY_DELIVERED, 249)
    delivery.deliver(comm.comm_id, units[1])  # a redelivered unit's settle keeps the receipts' status
    assert units_of(delivery, comm.comm_id) == []  # the whole message: nothing open, it settles
    assert parts.store.load_header(comm.comm_id).status is CommStatus.PARTIALLY_DELIVERED


def test_a_give_up_on_a_finished_communication_keeps_its_receipt_status(parts: Parts) -> None:
    comm = sent_comm(parts, 1)
    parts.book.apply(receipt("p-1", "delivered", DELIVERED))
    parts.delivery(ScriptedProvider()).give_up(comm.comm_id, "poison message after all")
    assert parts.store.load_header(comm.comm_id).status is CommStatus.DELIVERED


def test_an_index_that_cannot_be_written_leaves_the_batch_recorded(parts: Parts) -> None:
    comm = stored(parts.store, 3)
    broken = MessageIndex(parts.gateway.clients.worker_tables, "NoSuchTable")
    provider = ScriptedProvider()
    report = make_delivery(parts.store, provider, follow_up=ReceiptFollowUp(index=broken, concurrency=3)).deliver(
        comm.comm_id)
    assert report is not None and (report.status, report.sent) == (CommStatus.SENT, 3)
    assert parts.book.apply(receipt("p-1", "delivered", DELIVERED, comm_id=comm.comm_id, index=0)) \
        is ReceiptOutcome.APPLIED  # the callback's query string still finds it


def test_the_index_maps_every_accepted_message_and_nothing_else(parts: Parts) -> None:
    comm = stored(parts.store, 3)
    script = {comm.recipients_spec[1].phone_number: [Outcome.FAILED], comm.recipients_spec[2].phone_number:
              [Outcome.RETRY]}
    with pytest.raises(RetryLater):
        parts.delivery(ScriptedProvider(script)).deliver(comm.comm_id)
    assert parts.index.find("scripted", "p-1") == (comm.comm_id, 0)
    assert parts.index.find("scripted", "p-2") is None and parts.index.find("scripted", "p-3") is None
    assert parts.index.find("other", "p-1") is None


class NamelessProvider(ScriptedProvider):
    """Accepts every message without saying its id."""

    def send(self, messages, deadline=None):
        return [replace(result, provider_message_id=None) for result in super().send(messages, deadline)]


def test_a_message_accepted_without_an_id_is_not_indexed(parts: Parts) -> None:
    comm = stored(parts.store, 2)
    parts.delivery(NamelessProvider()).deliver(comm.comm_id)
    assert list(parts.index._table.list_entities()) == []
    assert parts.store.load_header(comm.comm_id).status is CommStatus.SENT


class NamingProvider(ScriptedProvider):
    receipts_name_the_recipient = True  # its callbacks carry CommId and index


class SilentProvider(ScriptedProvider):
    sends_receipts = False  # the outbox: nothing is sent, no receipt comes


@pytest.mark.parametrize("provider", [NamingProvider, SilentProvider])
def test_no_index_is_written_where_it_would_never_be_read(parts: Parts, provider) -> None:
    comm = stored(parts.store, 2)
    parts.delivery(provider()).deliver(comm.comm_id)
    assert parts.index.find("scripted", "p-1") is None and parts.index.find("scripted", "p-2") is None
    assert parts.store.load_header(comm.comm_id).status is CommStatus.SENT


def test_what_one_receipt_costs_in_storage_transactions(storage_env: dict[str, str]) -> None:
    """The figure docs/delivery.md gives: a query and a write, plus a point read to find the recipient when the
    receipt names only the message id (or, ACS, the CommId and number)."""
    counter = CountingPolicy()
    settings = Settings.from_env({"SMS_DEFAULT_SENDER": "+15005550006", **storage_env})
    gateway = Gateway.start(settings, clients=StorageClients.create(settings.storage, policies=[counter]))
    index = MessageIndex(gateway.clients.worker_tables, settings.message_index_table)
    comm = stored(gateway.store, 3)
    make_delivery(gateway.store, ScriptedProvider(), follow_up=ReceiptFollowUp(index=index)).deliver(comm.comm_id)
    counter.take()

    gateway.receipts.apply(receipt("p-1", "sent", SENT, comm_id=comm.comm_id, index=0))
    assert counter.take() == {"table query": 1, "table insert": 1}
    gateway.receipts.apply(receipt("p-1", "delivered", DELIVERED, comm_id=comm.comm_id, index=0))
    # + the licensee's webhook registration (it has none), read once a minute: a final receipt makes an event
    assert counter.take() == {"table query": 1, "table transaction": 1, "table read": 1}
    gateway.receipts.apply(receipt("p-2", "delivered", DELIVERED))
    assert counter.take() == {"table read": 1, "table query": 1, "table transaction": 1}
    gateway.receipts.apply(receipt("p-2", "delivered", DELIVERED))
    assert counter.take() == {"table read": 1, "table query": 1}  # a duplicate writes nothing
    gateway.receipts.apply(receipt("p-3", "Delivered", DELIVERED, comm_id=comm.comm_id,
                                   to=comm.recipients_spec[2].phone_number))
    assert counter.take() == {"table read": 1, "table query": 1, "table transaction": 1}
