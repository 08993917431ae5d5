"""The webhook events of one communication (GET /api/sms/{CommId}/events), found from its rows, never by a scan.

An event's id is a function of the communication and the change (``webhook_events.event_id_for``), and which
changes happened is what the communication's rows say (``webhook_emit``): a final recipient row, a final receipt
row, a reply row, its completion. ``candidate_ids`` names them all; retention deletes the same ids
(``retention_links.event_ids``) and the route looks them up in the licensee's partition, 14 to a query
(``WebhookOutbox.find_many``). Ids that were never stored (no webhook was registered then) are simply not found.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from gateway.storage import Snapshot
from gateway.webhook_emit import RECEIPT_TYPES, RECIPIENT_TYPES
from gateway.webhook_events import EventType, event_id_for
from gateway.webhook_outbox import StoredEvent, WebhookOutbox


def candidate_ids(comm_id: uuid.UUID, recipients: Iterable[tuple[int, str | None]],
                  receipts: Iterable[tuple[int, str | None]],
                  replies: Iterable[tuple[int, str, str]]) -> list[str]:
    """Every event id the communication may have made: ``recipients`` and ``receipts`` as (index, final state),
    ``replies`` as (recipient index, provider, provider message id); the completion's first, no repeats."""
    ids = [event_id_for(comm_id, EventType.COMPLETED)]
    ids += [event_id_for(comm_id, type_, index) for index, status in recipients
            if (type_ := RECIPIENT_TYPES.get(status)) is not None]
    ids += [event_id_for(comm_id, type_, index) for index, state in receipts
            if (type_ := RECEIPT_TYPES.get(state or "")) is not None]
    ids += [event_id_for(comm_id, EventType.REPLY, index, f"{provider}-{message_id}")
            for index, provider, message_id in replies]
    return list(dict.fromkeys(ids))


def snapshot_ids(snapshot: Snapshot) -> list[str]:
    """``candidate_ids`` of a communication read whole (``CommunicationStore.load``)."""
    return candidate_ids(snapshot.communication.comm_id,
                         [(recipient.index, recipient.status) for recipient in snapshot.stored_recipients],
                         [(record.index, record.state) for record in snapshot.receipts.values()],
                         [(reply.index, reply.provider, reply.message_id) for reply in snapshot.replies])


def events_of(outbox: WebhookOutbox, snapshot: Snapshot) -> list[StoredEvent]:
    """The communication's stored events, oldest first."""
    found = outbox.find_many(snapshot.communication.licensee_id, snapshot_ids(snapshot))
    return sorted(found, key=lambda event: event.created_at)
