"""Cancel: DELETE /api/sms/{CommId} ends every recipient not yet handed to a provider as Canceled.

A recipient can be canceled while it is Pending and its last attempt cannot have reached the provider (no error in
``providers.common.MAYBE_SENT``); a Sending one (claimed by a run that may be calling the provider now), and every
final one, is left as it is. The cancellations are written as a claim is: conditionally (a row not yet written is
created, an existing one replaced on the ETag read), at most ``PER_WRITE`` rows with the header and the events' mark
per transaction, so a worker claiming the same recipients at the same moment and this cancel never both win: the
loser reads again (a run steps back and finds them Canceled; the cancel finds them Sending and leaves them). Then the
header's counts and status are settled from the rows (``Delivery.settle``): nothing sent ends Canceled, with
``communication.completed``; a scheduled send leaves the schedule index. docs/messages.md, "Cancel".
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from gateway.auth import Principal
from gateway.delivery import Delivery
from gateway.errors import ApiError
from gateway.models import SMSCancelResponse
from gateway.providers.common import MAYBE_SENT
from gateway.status import own_snapshot, path_comm_id
from gateway.storage import (
    TRANSACTION_LIMIT,
    CommStatus,
    Communication,
    CommunicationStore,
    ConcurrentUpdate,
    Recipient,
    RecipientState,
    utcnow,
)
from gateway.webhook_emit import recipients_events
from gateway.webhook_events import EventSink
from gateway.webhook_publish import Emitter

log = logging.getLogger("gateway.cancel")

CANCELED = "Canceled"  # a canceled recipient's error code
PER_WRITE = TRANSACTION_LIMIT - 2  # recipient rows per transaction: the header and the events' mark take the rest
CANCEL_TRIES = 8  # reads and writes again when a worker's claim won a row first


@dataclass(frozen=True)
class Cancellation:
    """What a cancel did: how many recipients it canceled, and the communication's status after it."""

    comm_id: uuid.UUID
    reference: str
    canceled: int
    status: CommStatus


def cancelable(recipient: Recipient) -> bool:
    """Not handed to a provider, and never will be once canceled: Pending, and no attempt that may have reached it."""
    return recipient.status is RecipientState.PENDING and recipient.error_code not in MAYBE_SENT


class Canceler:
    def __init__(self, store: CommunicationStore, delivery: Delivery, events: EventSink | None = None) -> None:
        self._store = store
        self._delivery = delivery
        self._emitter = Emitter(events, store) if events is not None else None

    def by_id(self, principal: Principal, comm_id: str) -> SMSCancelResponse:
        """DELETE /api/sms/{CommId}: the caller's communication canceled; 404 as the status routes answer it."""
        done = self.cancel(principal.licensee_id, path_comm_id(comm_id))
        if done.canceled:
            message = f"Canceled {done.canceled} recipient(s) not yet handed to the provider"
        else:
            message = "Nothing to cancel: every recipient was already handed to the provider or ended"
        return SMSCancelResponse(CommId=done.comm_id, Reference=done.reference, Status=done.status.value,
                                 CanceledCount=done.canceled, Message=f"{message}; the communication is {done.status}")

    def cancel(self, licensee_id: uuid.UUID, comm_id: uuid.UUID) -> Cancellation:
        """Cancel what is still cancelable of the licensee's communication; 404 for one not the licensee's."""
        canceled = 0
        for _ in range(CANCEL_TRIES):
            snapshot = own_snapshot(self._store, licensee_id, comm_id)
            comm = snapshot.communication
            todo = [recipient for recipient in snapshot.all_recipients() if cancelable(recipient)]
            try:
                for start in range(0, len(todo), PER_WRITE):
                    batch = todo[start : start + PER_WRITE]
                    self._write(snapshot.communication, batch)
                    canceled += len(batch)
            except ConcurrentUpdate:
                continue  # a worker claimed (or another cancel ended) some of them first: read again
            break
        else:
            raise ApiError(503, "CancelContended", "Workers kept claiming this communication's recipients; "
                           "retry the cancel", headers={"Retry-After": "5"})
        status = self._delivery.settle(comm) if canceled or not comm.status.is_final else comm.status
        if status is None:
            header = self._store.header_counts(comm_id)
            status = header.status if header is not None else comm.status
        if status is not CommStatus.SCHEDULED:
            self._delivery.unschedule(comm)
        log.info("comm %s: %d recipient(s) canceled; now %s", comm_id.hex, canceled, status)
        return Cancellation(comm_id, comm.reference, canceled, status)

    def _write(self, comm: Communication, batch: list[Recipient]) -> None:
        now = utcnow()
        for recipient in batch:
            recipient.status = RecipientState.CANCELED
            recipient.error_code = CANCELED
            recipient.error_message = "Canceled before it was handed to the provider: not sent"
            recipient.updated_at = now
        comm.updated_at = now
        events = recipients_events(comm, batch) if self._emitter is not None else []
        # The communication is open (it has recipients to cancel): its open-work row covers the mark.
        mark = self._emitter.mark(comm.comm_id, events, now, covered=True) if self._emitter is not None else None
        self._store.save(comm, batch, claim=True, counts=False, mark=mark)
        if self._emitter is not None:
            self._emitter.publish(mark, events)
