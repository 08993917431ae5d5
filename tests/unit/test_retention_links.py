"""Retention finds a communication's webhook events by computing their ids from its rows (gateway/retention_links.py):
every event the rows say was made, of every type, and no type it does not know how to find."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from gateway.comm_events import snapshot_ids
from gateway.retention_links import FOUND_BY, event_ids
from gateway.storage import (
    Communication,
    ReceiptRecord,
    RecipientSpec,
    RecipientState,
    ReplyRecord,
    Snapshot,
    communication_entity,
    receipt_entity,
    recipient_entity,
    reply_entity,
)
from gateway.webhook_emit import derive
from gateway.webhook_events import EventType

AT = datetime(2026, 8, 1, 9, 15, 0, 123456, tzinfo=UTC)
FINAL = [RecipientState.SENT, RecipientState.FAILED, RecipientState.OPTED_OUT, RecipientState.CANCELED,
         RecipientState.EXPIRED]
RECEIPTS = {5: "Delivered", 6: "Undelivered", 7: "Failed", 0: None}  # 0: only a "sent" receipt came: no event


def test_every_event_type_has_a_way_to_be_found() -> None:
    """A new EventType fails here until retention knows which rows say its events were made."""
    assert set(FOUND_BY) == set(EventType)


def test_the_ids_computed_from_the_rows_are_those_of_every_event_the_rows_made() -> None:
    comm = Communication(comm_id=uuid.uuid4(), licensee_id=uuid.uuid4(), reference="R1", sender="+15005550006",
                         body="hi", recipients_spec=[RecipientSpec(f"+44710000000{n}") for n in range(8)],
                         created_at=AT, updated_at=AT)
    recipients = comm.planned_recipients()
    for recipient in recipients:
        recipient.status = FINAL[recipient.index] if recipient.index < len(FINAL) else RecipientState.SENT
        recipient.updated_at = AT + timedelta(minutes=1)
    receipts = {index: ReceiptRecord(index, f"SM{index}", "twilio", state=state, receipt_at=AT + timedelta(hours=1))
                for index, state in RECEIPTS.items()}
    replies = [ReplyRecord("twilio", f"SMreply{index}", index, "+447100000005", "+15005550006", "yes",
                           AT + timedelta(hours=2)) for index in (5, 6)] + [
        ReplyRecord("acs", "Incoming_1", 6, "+447100000006", "+15005550006", "no", AT + timedelta(hours=3))]
    snapshot = Snapshot(comm, recipients, receipts, replies)
    made = {event.event_id: event.type for event in derive(snapshot, AT + timedelta(minutes=2))}
    assert set(made.values()) == set(EventType)  # the partition below made one event of every type

    rows = [communication_entity(comm), *(recipient_entity(comm.comm_id, recipient) for recipient in recipients),
            *(receipt_entity(comm.comm_id, record) for record in receipts.values()),
            *(reply_entity(comm.comm_id, reply) for reply in replies)]
    candidates = event_ids(comm.comm_id, rows)

    assert set(candidates) == set(made)  # every event made, and nothing more to look up
    assert len(candidates) == len(set(candidates))
    # GET /api/sms/{CommId}/events computes them from the communication read whole: the same ids, same order.
    assert snapshot_ids(snapshot) == candidates


def test_open_recipient_rows_and_a_partition_without_rows_make_only_the_completion_candidate() -> None:
    comm_id = uuid.uuid4()
    rows = [{"RowKey": "r00000", "Status": RecipientState.PENDING.value},
            {"RowKey": "r00001", "Status": RecipientState.SENDING.value}, {"RowKey": "s00000"}]
    assert event_ids(comm_id, rows) == event_ids(comm_id, []) and len(event_ids(comm_id, [])) == 1
