"""The receipt state machine, on paper: forward only, first final wins, duplicates and strangers write nothing,
and the communication's status moves only once delivery is done and every accepted recipient has a final receipt."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gateway.message_index import key_of
from gateway.receipt_checks import CheckPolicy, Watch
from gateway.receipts import (
    Receipt,
    ReceiptOutcome,
    ReceiptState,
    decide,
    header_status,
    moves_forward,
    overall_status,
    shown_state,
    status_key,
)
from gateway.storage import (
    NO_RECEIPTS,
    CommStatus,
    HeaderCounts,
    ReceiptCounts,
    ReceiptRecord,
    ReceiptView,
    RecipientState,
)

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SENT, DELIVERED, UNDELIVERED, FAILED = (ReceiptState.SENT, ReceiptState.DELIVERED, ReceiptState.UNDELIVERED,
                                        ReceiptState.FAILED)


@pytest.mark.parametrize(("current", "incoming", "moves"), [
    (None, None, False), (None, SENT, True), (None, DELIVERED, True), (SENT, SENT, False),
    (SENT, DELIVERED, True), (SENT, UNDELIVERED, True), (SENT, FAILED, True), (DELIVERED, SENT, False),
    (DELIVERED, UNDELIVERED, False), (UNDELIVERED, DELIVERED, False), (FAILED, DELIVERED, False),
    (DELIVERED, None, False),
])
def test_a_receipt_moves_a_recipient_only_forward_and_the_first_final_wins(current, incoming, moves) -> None:
    assert moves_forward(current, incoming) is moves


@pytest.mark.parametrize(("delivery", "receipt", "shown"), [
    (RecipientState.SENT, None, RecipientState.SENT),
    (RecipientState.SENT, SENT, RecipientState.SENT),  # Sent stays Sent until a final receipt
    (RecipientState.SENDING, SENT, RecipientState.SENDING),
    (RecipientState.SENT, DELIVERED, RecipientState.DELIVERED),
    (RecipientState.SENDING, UNDELIVERED, RecipientState.UNDELIVERED),  # a receipt before delivery's record
    (RecipientState.SENT, FAILED, RecipientState.FAILED),
])
def test_a_recipient_shows_its_final_receipt_else_its_delivery_state(delivery, receipt, shown) -> None:
    assert shown_state(delivery, receipt) is shown


@pytest.mark.parametrize(("delivered_status", "sent", "counts", "expected"), [
    (CommStatus.SENDING, 2, ReceiptCounts(2, 0, 0), CommStatus.SENDING),
    (CommStatus.SENT, 3, ReceiptCounts(2, 0, 0), CommStatus.SENT),  # one still only Sent
    (CommStatus.SENT, 3, ReceiptCounts(3, 0, 0), CommStatus.DELIVERED),
    (CommStatus.SENT, 3, ReceiptCounts(2, 1, 0), CommStatus.PARTIALLY_DELIVERED),
    (CommStatus.SENT, 3, ReceiptCounts(0, 2, 1), CommStatus.UNDELIVERED),
    (CommStatus.PARTIALLY_SENT, 2, ReceiptCounts(1, 0, 0), CommStatus.PARTIALLY_SENT),
    (CommStatus.PARTIALLY_SENT, 2, ReceiptCounts(2, 0, 0), CommStatus.PARTIALLY_DELIVERED),  # one was refused
    (CommStatus.PARTIALLY_SENT, 2, ReceiptCounts(0, 2, 0), CommStatus.UNDELIVERED),
    (CommStatus.FAILED, 0, ReceiptCounts(), CommStatus.FAILED),
])
def test_the_overall_status_reflects_receipts_once_all_are_in(delivered_status, sent, counts, expected) -> None:
    assert overall_status(delivered_status, sent, counts) is expected


def header(status: CommStatus = CommStatus.SENT, recipients: int = 2, sent: int = 2, failed: int = 0,
           receipts: ReceiptCounts = NO_RECEIPTS) -> HeaderCounts:
    return HeaderCounts(status, recipients, sent, failed, receipts, etag="e")


def test_the_header_status_waits_for_delivery_to_finish() -> None:
    assert header_status(header(CommStatus.SENDING, sent=1), ReceiptCounts(1, 0, 0)) is CommStatus.SENDING
    assert header_status(header(CommStatus.SENT, sent=1, recipients=2), ReceiptCounts(1, 0, 0)) is CommStatus.SENT
    assert header_status(header(), ReceiptCounts(2, 0, 0)) is CommStatus.DELIVERED
    assert header_status(header(CommStatus.PARTIALLY_SENT, sent=1, failed=1), ReceiptCounts(1, 0, 0)) \
        is CommStatus.PARTIALLY_DELIVERED


def receipt(status: str, state: ReceiptState | None, message_id: str = "SM1", **fields) -> Receipt:
    return Receipt(provider="twilio", message_id=message_id, provider_status=status, state=state, **fields)


def view(receipt_row: ReceiptRecord | None = None, *, delivery: RecipientState | None = RecipientState.SENT,
         message_id: str | None = "SM1", head: HeaderCounts | None = None) -> ReceiptView:
    return ReceiptView(head or header(), delivery, message_id, receipt_row)


def test_a_final_receipt_is_applied_counted_and_completes_the_status_when_last() -> None:
    decision = decide(view(head=header(receipts=ReceiptCounts(1, 0, 0))),
                      receipt("undelivered", UNDELIVERED, error_code="30003", error_message="Unreachable"), 1, NOW)
    assert decision.outcome is ReceiptOutcome.APPLIED
    assert decision.counts == ReceiptCounts(1, 1, 0) and decision.status is CommStatus.PARTIALLY_DELIVERED
    record = decision.record
    assert record is not None and (record.state, record.seen, record.error_code) == ("Undelivered", ("undelivered",),
                                                                                     "30003")
    assert record.receipt_at == NOW and record.row_key == "s00001"


def test_a_final_receipt_not_the_last_counts_without_moving_the_status() -> None:
    decision = decide(view(), receipt("delivered", DELIVERED), 0, NOW)
    assert (decision.outcome, decision.counts, decision.status) == (ReceiptOutcome.APPLIED, ReceiptCounts(1, 0, 0),
                                                                    None)


def test_sent_after_delivered_is_recorded_and_moves_nothing() -> None:
    known = ReceiptRecord(0, "SM1", "twilio", state="Delivered", seen=("delivered",), receipt_at=NOW, etag="r")
    decision = decide(view(known), receipt("sent", SENT), 0, NOW + timedelta(seconds=5))
    assert decision.outcome is ReceiptOutcome.RECORDED and decision.counts is None
    assert decision.record is not None
    assert (decision.record.state, decision.record.seen, decision.record.receipt_at) == ("Delivered",
                                                                                         ("delivered", "sent"), NOW)


def test_a_status_that_is_not_shown_is_recorded_only() -> None:
    decision = decide(view(), receipt("queued", None), 0, NOW)
    assert decision.outcome is ReceiptOutcome.RECORDED and decision.record is not None
    assert decision.record.state is None and decision.record.seen == ("queued",)


def test_a_repeat_of_a_message_and_status_writes_nothing() -> None:
    known = ReceiptRecord(0, "SM1", "twilio", state="Sent", seen=("queued", "sent"), etag="r")
    assert decide(view(known), receipt("Sent", SENT), 0, NOW).record is None
    assert decide(view(known), receipt("sent", SENT), 0, NOW).outcome is ReceiptOutcome.DUPLICATE


def test_a_receipt_for_another_message_than_the_recipients_writes_nothing() -> None:
    assert decide(view(message_id="SM2"), receipt("delivered", DELIVERED), 0, NOW).outcome is ReceiptOutcome.UNKNOWN
    earlier = ReceiptRecord(0, "SM2", "twilio", seen=("queued",), etag="r")
    decision = decide(view(earlier, message_id=None, delivery=RecipientState.SENDING),
                      receipt("delivered", DELIVERED), 0, NOW)
    assert decision.outcome is ReceiptOutcome.UNKNOWN and decision.record is None


def test_a_receipt_before_delivery_recorded_the_send_is_applied_and_counted() -> None:
    decision = decide(view(delivery=RecipientState.SENDING, message_id=None,
                           head=header(CommStatus.SENDING, sent=0)), receipt("delivered", DELIVERED), 0, NOW)
    assert (decision.outcome, decision.counts, decision.status) == (ReceiptOutcome.APPLIED, ReceiptCounts(1, 0, 0),
                                                                    None)


def test_a_receipt_on_a_recipient_delivery_recorded_failed_moves_nothing() -> None:
    decision = decide(view(delivery=RecipientState.FAILED, head=header(CommStatus.PARTIALLY_SENT, sent=1, failed=1)),
                      receipt("delivered", DELIVERED), 1, NOW)
    assert decision.outcome is ReceiptOutcome.RECORDED and decision.counts is None
    assert decision.record is not None and decision.record.state is None


def test_statuses_are_kept_as_one_lower_case_word() -> None:
    assert status_key(" Delivered ") == "delivered" and status_key("partially delivered") == "partially_delivered"


def test_message_ids_become_keys_table_storage_accepts() -> None:
    assert key_of("SMd6a2b1c0") == "SMd6a2b1c0"
    assert key_of("Outgoing_2026_ab-cd") == "Outgoing_2026_ab-cd"
    escaped = key_of("a/b\\c#d?e%f\tg")
    assert not set("/\\#?\t") & set(escaped) and escaped != key_of("a/b\\c#d?e%f g")


def test_a_check_waits_twice_as_long_each_time_and_never_past_the_give_up() -> None:
    policy = CheckPolicy(after=timedelta(minutes=30), give_up=timedelta(hours=72), per_run=10)
    sent = NOW
    watch = Watch(uuid.uuid4(), 0, "SM1", "twilio", sent, policy.first(sent))
    assert watch.due_at == NOW + timedelta(minutes=30)
    at = watch.due_at
    assert policy.next(watch, at) == at + timedelta(hours=1)
    later = Watch(watch.comm_id, 0, "SM1", "twilio", sent, at, checks=6)
    assert policy.next(later, NOW + timedelta(hours=60)) == NOW + timedelta(hours=72)
    assert policy.next(later, NOW + timedelta(hours=72)) is None
