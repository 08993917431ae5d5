"""Which webhook events a state change makes, and what they carry: pure functions of the stored rows (issue 15).

Every event is built from what the communication's partition holds once the change is written (a recipient row,
a receipt row, a reply row, the header), with a timestamp taken from those rows, so building it again later (the
sweep recovering a change whose publish failed, ``gateway/webhook_publish.py``) gives the same id and the same
body. ``derive`` is that "again": every event a partition's rows say happened.

``data`` always has the same keys (null when there is no value): CommId, Reference, RecipientId, PhoneNumber (E.164),
Status, ErrorCode, LinkedObjectId, SuiteId, Notes; a reply adds From, To, Body, ReceivedAt; ``communication.completed``
has no recipient keys and adds RecipientCount, SentCount, FailedCount. Guids are in N form, as the API writes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.storage import (
    CommStatus,
    Communication,
    ReceiptRecord,
    Recipient,
    RecipientState,
    ReplyRecord,
    Snapshot,
    aggregate_status,
    count_recipients,
    recipient_id_for,
    unsent_status,
)
from gateway.webhook_events import EventType, WebhookEvent, event_id_for

RECIPIENT_TYPES = {RecipientState.SENT: EventType.SENT, RecipientState.FAILED: EventType.FAILED,
                   RecipientState.OPTED_OUT: EventType.OPTED_OUT, RecipientState.CANCELED: EventType.CANCELED,
                   RecipientState.EXPIRED: EventType.EXPIRED}
"""What delivery's final state of a recipient row tells the licensee."""
RECEIPT_TYPES = {"Delivered": EventType.DELIVERED, "Undelivered": EventType.UNDELIVERED, "Failed": EventType.FAILED}
"""What a receipt's final state (``receipts.ReceiptState``) tells; a receipt saying only "sent" tells nothing new.
A recipient delivery recorded Failed never takes a receipt, so its ``message.failed`` is one event either way."""


def recipient_event(comm: Communication, recipient: Recipient) -> WebhookEvent | None:
    """The event of a recipient row delivery made final (Sent, Failed, OptedOut); None while it is open."""
    type_ = RECIPIENT_TYPES.get(recipient.status)
    if type_ is None or recipient.updated_at is None:
        return None
    return _event(comm, type_, recipient.index, "", recipient.updated_at,
                  _recipient_data(comm, recipient.index, recipient.status.value, recipient.error_code))


def receipt_event(comm: Communication, record: ReceiptRecord) -> WebhookEvent | None:
    """The event of a receipt row a final receipt moved (Delivered, Undelivered, Failed); None otherwise."""
    type_ = RECEIPT_TYPES.get(record.state or "")
    if type_ is None or record.receipt_at is None or record.index >= len(comm.recipients_spec):
        return None
    return _event(comm, type_, record.index, "", record.receipt_at,
                  _recipient_data(comm, record.index, record.state, record.error_code))


def reply_event(comm: Communication, reply: ReplyRecord) -> WebhookEvent | None:
    """``message.reply`` for a reply attributed to recipient ``reply.index``; one per provider message."""
    if reply.index >= len(comm.recipients_spec):
        return None
    data = _recipient_data(comm, reply.index, None, None) | {
        "From": reply.sender, "To": reply.to, "Body": reply.body, "ReceivedAt": _iso(reply.received_at)}
    return _event(comm, EventType.REPLY, reply.index, f"{reply.provider}-{reply.message_id}", reply.received_at, data)


def completed_event(comm: Communication, sent: int, failed: int, at: datetime, *,
                    unsent: CommStatus = CommStatus.FAILED) -> WebhookEvent | None:
    """``communication.completed`` once no recipient is left open (``sent + failed`` is every recipient).

    Its Status is delivery's (Sent, PartiallySent, Failed; with nothing sent, ``unsent``: Canceled or Expired when
    every recipient ended so, ``storage.unsent_status``), never a receipt status: the same whenever it is built,
    as the receipts that come later have events of their own. ``at`` is when the change that completed it happened.
    """
    total = len(comm.recipients_spec)
    if sent + failed < total:
        return None
    data = {"CommId": comm.comm_id.hex, "Reference": comm.reference,
            "Status": aggregate_status(sent, failed, 0, unsent=unsent).value, "ErrorCode": None, **_caller_ids(comm),
            "RecipientCount": total, "SentCount": sent, "FailedCount": failed}
    return _event(comm, EventType.COMPLETED, None, "", at, data)


def recipients_events(comm: Communication, recipients: Sequence[Recipient]) -> list[WebhookEvent]:
    """The events of recipient rows just written final (a batch's record, an opt-out, a give-up)."""
    return [event for recipient in recipients if (event := recipient_event(comm, recipient)) is not None]


def derive(snapshot: Snapshot, completed_at: datetime) -> list[WebhookEvent]:
    """Every event the partition's rows say happened (``snapshot`` read whole): the sweep's recovery.

    ``completed_at`` is the timestamp ``communication.completed`` was first built with (the one value not kept
    in a row: the sweep has it from the change's mark).
    """
    comm = snapshot.communication
    recipients = snapshot.all_recipients()
    events = recipients_events(comm, recipients)
    events += [event for record in snapshot.receipts.values() if (event := receipt_event(comm, record)) is not None]
    events += [event for reply in snapshot.replies if (event := reply_event(comm, reply)) is not None]
    sent, failed, _ = count_recipients(recipients)
    completed = completed_event(comm, sent, failed, completed_at,
                                unsent=unsent_status(recipient.status for recipient in recipients))
    return events + ([completed] if completed is not None else [])


def _event(comm: Communication, type_: EventType, index: int | None, detail: str, at: datetime,
           data: dict[str, Any]) -> WebhookEvent:
    return WebhookEvent(event_id_for(comm.comm_id, type_, index, detail), comm.licensee_id, type_, at, data)


def _recipient_data(comm: Communication, index: int, status: str | None, error_code: str | None) -> dict[str, Any]:
    return {"CommId": comm.comm_id.hex, "Reference": comm.reference,
            "RecipientId": recipient_id_for(comm.comm_id, index).hex,
            "PhoneNumber": comm.recipients_spec[index].phone_number, "Status": status, "ErrorCode": error_code,
            **_caller_ids(comm)}


def _caller_ids(comm: Communication) -> dict[str, Any]:
    """What ties the event back to the licensee's own objects (the seed's LinkedObjectId and SuiteId) and its notes."""
    return {"LinkedObjectId": _hex(comm.linked_object_id), "SuiteId": _hex(comm.suite_id), "Notes": comm.notes}


def _hex(value: uuid.UUID | None) -> str | None:
    return value.hex if value is not None else None


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")
