"""Resend against a real Azurite: the rows a resend reads and writes, its links both ways, its keys, and what a
crash between its two writes leaves (``gateway/resend.py``). Rows are written straight through the store, so
every state (Expired and Canceled included) is what the test says."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from datetime import timedelta

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.data.tables import UpdateMode

from bench.common import CountingPolicy
from gateway.auth import Principal
from gateway.errors import ApiError
from gateway.idempotency import WINDOW
from gateway.queue import decode_message
from gateway.resend import implicit_key
from gateway.runtime import Gateway
from gateway.segments import count_segments
from gateway.storage import (
    CLAIM_ROW,
    HEADER_ROW,
    AcceptOutcomeUnknown,
    CommStatus,
    Communication,
    CommunicationStore,
    ReceiptRecord,
    RecipientState,
    utcnow,
)
from tests.integration.test_accept_floor import started
from tests.integration.test_storage import make_comm

LICENSEE = uuid.UUID("0d6f4a8e-5c1b-4e57-9a43-1f7d2b3c4e5f")
OTHER = uuid.UUID("9e9e9e9e-5c1b-4e57-9a43-1f7d2b3c4e5f")
ME = Principal("k1", "tests", LICENSEE)

# Each recipient's row state; index 1's Sent row has an Undelivered receipt, index 2's a Delivered one.
STATES = [RecipientState.FAILED, RecipientState.SENT, RecipientState.SENT, RecipientState.OPTED_OUT,
          RecipientState.CANCELED, RecipientState.EXPIRED, RecipientState.SENT]
RESENT = [0, 1, 5]  # Failed, Undelivered (by receipt), Expired


@pytest.fixture
def gateway(make_gateway) -> Gateway:
    return make_gateway()


def written(store: CommunicationStore, states: Sequence[RecipientState] = STATES,
            receipts: dict[int, str] | None = None, licensee: uuid.UUID = LICENSEE) -> Communication:
    """A communication whose recipient rows are in ``states``, with receipts (index: state) beside them."""
    comm = make_comm(len(states), licensee=licensee, reference=uuid.uuid4().hex[:10].upper())
    comm.status = CommStatus.PARTIALLY_SENT
    comm.notes, comm.linked_object_id, comm.suite_id = "reminder", uuid.uuid4(), uuid.uuid4()
    comm.reply_is_allowed = True
    comm.recipient_rows_written = True
    rows = comm.planned_recipients()
    for row, state in zip(rows, states, strict=True):
        row.status = state
    store.create(comm, rows)
    for index, state in (receipts if receipts is not None else {1: "Undelivered", 2: "Delivered"}).items():
        store.save_receipt(comm.comm_id, ReceiptRecord(index, f"SM{index}", "twilio", state=state,
                                                       receipt_at=utcnow()), None, None)
    return comm


def resends_of(gateway: Gateway, comm: Communication) -> list[dict]:
    """Every stored communication naming ``comm`` as its original (a scan of this test's own table)."""
    table = gateway.clients.tables.get_table_client(gateway.settings.communications_table)
    return list(table.query_entities("RowKey eq @row and ResentFrom eq @original",
                                     parameters={"row": HEADER_ROW, "original": comm.comm_id.hex}))


def queued(gateway: Gateway) -> list[uuid.UUID]:
    messages = gateway.clients.queue(gateway.settings.queue_name).peek_messages(max_messages=32)
    return [decode_message(message.content).comm_id for message in messages]


def test_a_resend_is_a_new_linked_communication_of_the_failed_undelivered_and_expired(gateway: Gateway) -> None:
    original = written(gateway.store)
    answer = gateway.service.resend(ME, original.comm_id.hex)
    assert answer.Status and answer.Message == (f"Resends 3 recipients of {original.comm_id.hex}; queued for delivery; "
                                                f"{count_segments(original.body).describe()} each")
    resend = gateway.store.load_header(answer.CommId)
    assert resend is not None and resend.reference == answer.Reference and resend.licensee_id == LICENSEE
    assert [spec.phone_number for spec in resend.recipients_spec] == [
        original.recipients_spec[i].phone_number for i in RESENT]
    assert [spec.name for spec in resend.recipients_spec] == [f"n{i}" for i in RESENT]
    assert (resend.body, resend.sender, resend.notes) == (original.body, original.sender, "reminder")
    assert (resend.linked_object_id, resend.suite_id) == (original.linked_object_id, original.suite_id)
    assert resend.reply_is_allowed and resend.status is CommStatus.QUEUED
    assert resend.resent_from == original.comm_id
    assert gateway.store.load_header(original.comm_id).resent_as == (resend.comm_id,)
    assert queued(gateway) == [resend.comm_id]  # queued like a fresh send
    shown = gateway.status.by_id(ME, original.comm_id.hex)
    assert shown.ResentAs == [resend.comm_id] and shown.ResentFrom is None
    assert gateway.status.by_id(ME, resend.comm_id.hex).ResentFrom == original.comm_id


def test_another_licensees_communication_is_not_found_as_on_the_status_route(gateway: Gateway) -> None:
    theirs = written(gateway.store, licensee=OTHER)
    for comm_id in (theirs.comm_id.hex, uuid.uuid4().hex, "not-a-guid"):
        with pytest.raises(ApiError) as refused:
            gateway.service.resend(ME, comm_id)
        with pytest.raises(ApiError) as status:
            gateway.status.by_id(ME, comm_id)
        assert (refused.value.status, refused.value.error_code, refused.value.message) == (
            status.value.status, status.value.error_code, status.value.message)
        assert (refused.value.status, refused.value.error_code) == (404, "NotFound")
    assert resends_of(gateway, theirs) == []


@pytest.mark.parametrize("states", [
    [RecipientState.SENT, RecipientState.OPTED_OUT, RecipientState.CANCELED],
    [RecipientState.PENDING, RecipientState.SENDING],
], ids=["sent-opted-out-canceled", "still-open"])
def test_nothing_to_resend_is_a_409_and_stores_nothing(gateway: Gateway, states: list[RecipientState]) -> None:
    original = written(gateway.store, states, receipts={})
    with pytest.raises(ApiError) as refused:
        gateway.service.resend(ME, original.comm_id.hex)
    assert (refused.value.status, refused.value.error_code) == (409, "NothingToResend")
    assert ("still to be sent" in refused.value.message) == (RecipientState.PENDING in states)
    assert resends_of(gateway, original) == [] and queued(gateway) == []


def test_a_second_resend_takes_only_numbers_no_earlier_resend_carried(gateway: Gateway) -> None:
    original = written(gateway.store)
    first = gateway.service.resend(ME, original.comm_id.hex)
    with pytest.raises(ApiError) as refused:
        gateway.service.resend(ME, original.comm_id.hex)
    assert (refused.value.status, refused.value.error_code) == (409, "AlreadyResent")
    assert first.CommId.hex in refused.value.message
    # Later, a receipt says a message that was Sent did not arrive: that one can be resent.
    gateway.store.save_receipt(original.comm_id, ReceiptRecord(6, "SM6", "twilio", state="Undelivered",
                                                               receipt_at=utcnow()), None, None)
    second = gateway.service.resend(ME, original.comm_id.hex)
    resend = gateway.store.load_header(second.CommId)
    assert [spec.phone_number for spec in resend.recipients_spec] == [original.recipients_spec[6].phone_number]
    assert gateway.store.load_header(original.comm_id).resent_as == (first.CommId, second.CommId)
    # A resend is resent in its own right, once its recipients end: not while they are still open.
    with pytest.raises(ApiError) as open_resend:
        gateway.service.resend(ME, first.CommId.hex)
    assert open_resend.value.error_code == "NothingToResend" and "3 still to be sent" in open_resend.value.message


def test_the_same_idempotency_key_answers_the_first_resend(gateway: Gateway) -> None:
    original = written(gateway.store)
    first = gateway.service.resend(ME, original.comm_id.hex, idempotency_key="resend-1")
    again = gateway.service.resend(ME, original.comm_id.hex, idempotency_key="resend-1")
    assert again == first
    assert len(resends_of(gateway, original)) == 1
    assert queued(gateway) == [first.CommId]  # the retry's message waits out a retry delay: not visible yet
    assert gateway.store.load_header(original.comm_id).resent_as == (first.CommId,)
    other = written(gateway.store)
    with pytest.raises(ApiError) as reused:
        gateway.service.resend(ME, other.comm_id.hex, idempotency_key="resend-1")
    assert (reused.value.status, reused.value.error_code) == (422, "IdempotencyKeyReused")
    assert resends_of(gateway, other) == []


def test_a_key_past_its_window_is_a_new_one(gateway: Gateway) -> None:
    original = written(gateway.store)
    first = gateway.service.resend(ME, original.comm_id.hex, idempotency_key="resend-old")
    table = gateway.clients.tables.get_table_client(gateway.settings.communications_table)
    table.update_entity({"PartitionKey": first.CommId.hex, "RowKey": CLAIM_ROW,
                         "CreatedAt": utcnow() - WINDOW - timedelta(minutes=1)}, mode=UpdateMode.MERGE)
    with pytest.raises(ApiError) as refused:  # a new request: and every number it would take was resent
        gateway.service.resend(ME, original.comm_id.hex, idempotency_key="resend-old")
    assert refused.value.error_code == "AlreadyResent"
    gateway.store.save_receipt(original.comm_id, ReceiptRecord(6, "SM6", "twilio", state="Failed",
                                                               receipt_at=utcnow()), None, None)
    second = gateway.service.resend(ME, original.comm_id.hex, idempotency_key="resend-old")
    assert second.CommId != first.CommId and second.Message.startswith("Resends 1 recipient of")
    assert gateway.store.load_header(original.comm_id).resent_as == (first.CommId, second.CommId)


class AnswerLost(CommunicationStore):
    """A store whose accepting write happens but whose answer never comes back."""

    def create(self, comm, recipients=(), *, claim=None):  # type: ignore[no-untyped-def]
        super().create(comm, recipients, claim=claim)
        raise AcceptOutcomeUnknown(comm.comm_id.hex)


def test_a_resend_whose_answer_was_lost_is_503_and_its_retry_finds_it(gateway: Gateway) -> None:
    original = written(gateway.store)
    healthy = gateway.service._store
    gateway.service._store = AnswerLost(gateway.clients.tables, gateway.settings.communications_table)
    with pytest.raises(ApiError) as unknown:
        gateway.service.resend(ME, original.comm_id.hex)
    assert (unknown.value.status, unknown.value.error_code) == (503, "OutcomeUnknown")
    assert unknown.value.headers == {"Retry-After": "5"} and "twice" in unknown.value.message
    assert queued(gateway) == [] and gateway.store.load_header(original.comm_id).resent_as == ()
    gateway.service._store = healthy
    retry = gateway.service.resend(ME, original.comm_id.hex)  # no key: the implicit one finds it
    assert [entity["PartitionKey"] for entity in resends_of(gateway, original)] == [retry.CommId.hex]
    assert gateway.store.load_header(original.comm_id).resent_as == (retry.CommId,)


class LinkFails(CommunicationStore):
    """A store whose link write never arrives: what a crash between the resend's two writes leaves."""

    def add_resent_as(self, comm_id: uuid.UUID, resend_id: uuid.UUID) -> None:
        raise ServiceRequestError("connection reset")


@pytest.mark.parametrize("key", [None, "crash-key"], ids=["no-key", "idempotency-key"])
def test_a_retry_after_the_link_was_lost_finds_the_resend_and_completes_the_link(gateway: Gateway,
                                                                                  key: str | None) -> None:
    original = written(gateway.store)
    healthy = gateway.service._store
    gateway.service._store = LinkFails(gateway.clients.tables, gateway.settings.communications_table)
    first = gateway.service.resend(ME, original.comm_id.hex, idempotency_key=key)
    assert gateway.store.load_header(original.comm_id).resent_as == ()  # the original does not list it yet
    assert gateway.store.load_header(first.CommId).resent_from == original.comm_id  # the resend names it
    gateway.service._store = healthy
    retry = gateway.service.resend(ME, original.comm_id.hex, idempotency_key=key)
    assert retry.CommId == first.CommId
    assert [entity["PartitionKey"] for entity in resends_of(gateway, original)] == [first.CommId.hex]
    assert gateway.store.load_header(original.comm_id).resent_as == (first.CommId,)


def test_resends_at_the_same_moment_without_a_key_make_one(gateway: Gateway) -> None:
    original = written(gateway.store)
    answers: list[uuid.UUID] = []
    start = threading.Barrier(4)

    def resend() -> None:
        start.wait()
        try:
            answers.append(gateway.service.resend(ME, original.comm_id.hex).CommId)
        except ApiError as error:  # read the original after the first one's link: a later POST
            answers.append(error.error_code)

    threads = [threading.Thread(target=resend) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = resends_of(gateway, original)
    assert len(stored) == 1
    assert gateway.store.load_header(original.comm_id).resent_as == (uuid.UUID(stored[0]["PartitionKey"]),)
    # The claim and the header are one transaction: a POST that lost the race finds both and answers the resend.
    assert set(answers) <= {uuid.UUID(stored[0]["PartitionKey"]), "AlreadyResent"} and len(answers) == 4


def test_the_implicit_key_of_a_resend_moves_on_once_the_original_lists_it(gateway: Gateway) -> None:
    original = written(gateway.store)
    before = implicit_key(gateway.store.load_header(original.comm_id))
    gateway.service.resend(ME, original.comm_id.hex)
    assert implicit_key(gateway.store.load_header(original.comm_id)) != before


class Interleaved(CommunicationStore):
    """A store whose first link merge loses a race: another writer appends between its read and its write."""

    rival: uuid.UUID | None = None

    def _merge_header(self, comm_id, properties, etag, mark=None):  # type: ignore[no-untyped-def]
        if self.rival is not None:
            rival, self.rival = self.rival, None
            CommunicationStore(self._service, self._table_name).add_resent_as(comm_id, rival)
        return super()._merge_header(comm_id, properties, etag, mark)


def test_a_link_that_loses_a_race_reads_again_and_keeps_both(gateway: Gateway) -> None:
    original = written(gateway.store)
    store = Interleaved(gateway.clients.tables, gateway.settings.communications_table)
    rival, mine = uuid.uuid4(), uuid.uuid4()
    store.rival = rival
    store.add_resent_as(original.comm_id, mine)
    store.add_resent_as(original.comm_id, mine)  # listed already: nothing changes
    header = gateway.store.load_header(original.comm_id)
    assert header.resent_as == (rival, mine)
    assert (header.status, header.sent_count) == (original.status, original.sent_count)  # a merge of one property


def test_a_resend_costs_a_query_a_transaction_a_read_a_merge_and_a_queue_put(storage_env: dict[str, str]) -> None:
    """docs/messages.md, "Resend", Cost: counted on the wire (and the message log's two rows and its row by recipient,
    one transaction for up to 100 numbers: docs/log.md)."""
    counter = CountingPolicy()
    gateway = started(storage_env, counter)
    original = written(gateway.store)
    counter.take()
    gateway.service.resend(ME, original.comm_id.hex)
    assert counter.take() == {"table query": 1, "table transaction": 2, "table read": 1, "table PATCH entity": 1,
                              "queue send": 1, "table PUT entity": 3}  # PUT: two message log rows, the open-work row
    # transaction: the resend's rows (header, key) and the log's rows by recipient
    gateway.store.save_receipt(original.comm_id, ReceiptRecord(6, "SM6", "twilio", state="Undelivered",
                                                               receipt_at=utcnow()), None, None)
    counter.take()
    gateway.service.resend(ME, original.comm_id.hex)  # one earlier resend to read
    assert counter.take() == {"table query": 1, "table transaction": 2, "table read": 2, "table PATCH entity": 1,
                              "queue send": 1, "table PUT entity": 3}
