"""Handing a state change's webhook events to the sink so that none is lost (issue 15, docs/webhooks.md).

A change that makes events (``gateway/webhook_emit.py``) writes, in its own transaction, a mark row in the
communication's partition naming those events (``storage.EventMark``); after the write the events are published
(``EventSink.publish``) and the mark deleted. A process that dies, or a sink that fails, between the write and the
delete leaves the mark: the sweep (``recover``, which finds marks through the open-work index,
``gateway/open_work.py``) reads the partition, builds the events the mark names again (the
same ids, the same bodies: they are built from the stored rows) and publishes them. The sink stores an event once
by id, so a publish that happened twice is one event.

A licensee without a webhook costs nothing: when the sink can tell (``wants``), no mark is written and nothing is
published.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime

from gateway.redact import describe
from gateway.storage import CommunicationStore, EventMark
from gateway.webhook_emit import derive
from gateway.webhook_events import EventSink, WebhookEvent

log = logging.getLogger("gateway.webhooks")


class Emitter:
    """Marks and publishes the events of the changes one writer makes (delivery, receipts, inbound replies)."""

    def __init__(self, sink: EventSink, store: CommunicationStore) -> None:
        self._sink = sink
        self._store = store

    def wants(self, licensee_id: uuid.UUID) -> bool:
        """Whether the licensee's events go anywhere: the sink says (``wants``, a cached look-up), else yes."""
        wants = getattr(self._sink, "wants", None)
        return True if wants is None else bool(wants(licensee_id))

    def mark(self, comm_id: uuid.UUID, events: Sequence[WebhookEvent], changed_at: datetime, *,
             covered: bool = False) -> EventMark | None:
        """The mark to write with a change making ``events``; None when there is nothing to publish.

        ``covered``: the communication is open, so its own open-work row leads the sweep to its partition's marks
        (delivery, a cancel). Otherwise (a receipt, a reply: the communication may be final, its row gone) the mark
        is listed in the open-work index now, before the change, instead of in the partition.
        """
        if not events or not self.wants(events[0].licensee_id):
            return None
        mark = EventMark(comm_id, tuple(event.event_id for event in events), changed_at)
        open_work = self._store.open_work
        return mark if covered or open_work is None else open_work.list_mark(mark)

    def publish(self, mark: EventMark | None, events: Sequence[WebhookEvent]) -> bool:
        """Publish the events of a change written with ``mark``, then delete the mark.

        Whatever the sink or storage raised is logged, not raised: the change is written and its mark stays, so
        the sweep publishes the events; raising would only make the caller's retry find the change done and
        publish nothing (and fail a delivery run whose SMS went out). Returns whether nothing is left for the sweep.
        """
        if mark is None:
            return True
        try:
            self._sink.publish(events)
            self._store.clear_mark(mark)
        except Exception as error:  # the mark stays: recovered by the sweep
            log.warning("comm %s: %d webhook event(s) left for the sweep: %s", mark.comm_id.hex, len(events),
                        describe(error))
            return False
        return True

    def recover(self, comm_id: uuid.UUID, marks: Sequence[EventMark]) -> int:
        """Publish the events the communication's ``marks`` name and delete the marks; how many were.

        The communication is read once (one partition query) and its events built again
        (``webhook_emit.derive``); a mark whose events cannot all be built (its partition is gone, or a listed
        mark's change was never written) is deleted with what could be. A storage failure leaves the marks to the
        next sweep (logged, not raised: the sweep goes on with other work).
        """
        try:
            return self._recover(comm_id, marks)
        except Exception as error:  # the marks stay: the next sweep tries again, and the other comms go on
            log.warning("comm %s: webhook events not recovered this sweep: %s", comm_id.hex, describe(error))
            return 0

    def _recover(self, comm_id: uuid.UUID, marks: Sequence[EventMark]) -> int:
        snapshot = self._store.load(comm_id)
        for mark in marks:
            events = [] if snapshot is None else _named(derive(snapshot, mark.changed_at), mark.event_ids)
            if len(events) < len(mark.event_ids):
                log.warning("comm %s: %d of %d marked webhook event(s) could not be built again", comm_id.hex,
                            len(mark.event_ids) - len(events), len(mark.event_ids))
            if events:
                self._sink.publish(events)
            self._store.clear_mark(mark)
            log.info("comm %s: %d webhook event(s) recovered by the sweep", comm_id.hex, len(events))
        return len(marks)


def _named(events: Sequence[WebhookEvent], ids: Sequence[str]) -> list[WebhookEvent]:
    by_id = {event.event_id: event for event in events}
    return [by_id[event_id] for event_id in ids if event_id in by_id]
