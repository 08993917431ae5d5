"""The SMSSend operation: validate, store, then queue or deliver.

This is the only place that decides what a send means; the HTTP adapter only translates
requests and responses, and the queue adapter only feeds delivery.
"""

from __future__ import annotations

import logging
import secrets
import uuid

from azure.core.exceptions import AzureError

from gateway.auth import Principal
from gateway.delivery import Delivery, DeliveryInProgress, DeliveryReport, RetryLater, hand_to_queue, retry_delay
from gateway.models import CommResponse, SMSSend
from gateway.queue import DeliveryQueue
from gateway.settings import Settings
from gateway.storage import Communication, CommunicationStore, ReferenceTaken, comm_id_for
from gateway.validation import ValidSend, validate_send

log = logging.getLogger("gateway.service")

REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
REFERENCE_LENGTH = 10  # 50 bits: a collision only costs one more insert attempt
REFERENCE_ATTEMPTS = 5
IMMEDIATE_RUN = 1  # an immediate send's delivery run is the communication's first: the queue's runs follow it


def new_reference() -> str:
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class SendService:
    def __init__(self, settings: Settings, store: CommunicationStore, queue: DeliveryQueue, delivery: Delivery) -> None:
        self._settings = settings
        self._store = store
        self._queue = queue
        self._delivery = delivery

    def send(self, principal: Principal, request: SMSSend, *, immediate: bool) -> CommResponse:
        licensee_id = principal.licensee_for(request.SMSModel.LicenseeId if request.SMSModel else None)
        valid = validate_send(request, self._settings)
        comm = self._store_new(licensee_id, valid)
        if immediate:
            return self._deliver_now(comm)
        try:
            self._queue.enqueue(comm.comm_id)
        except AzureError:
            # Stored but not queued: the sweep finds Queued communications without a message.
            log.warning("comm %s stored but not queued; the sweep will queue it", comm.comm_id.hex, exc_info=True)
        count = len(valid.recipients)
        return CommResponse(
            CommId=comm.comm_id,
            Reference=comm.reference,
            Status=True,
            Message=f"Queued for delivery to {_plural(count, 'recipient')}",
        )

    def _store_new(self, licensee_id: uuid.UUID, valid: ValidSend) -> Communication:
        for _ in range(REFERENCE_ATTEMPTS):
            reference = new_reference()
            comm = Communication(
                comm_id=comm_id_for(licensee_id, reference),
                licensee_id=licensee_id,
                reference=reference,
                sender=valid.sender,
                sender_name=valid.sender_name,
                sender_contact_id=valid.sender_contact_id,
                body=valid.body,
                recipients_spec=valid.recipients,
                reply_is_allowed=valid.reply_is_allowed,
                reply_is_required=valid.reply_is_required,
                notes=valid.notes,
                linked_object_id=valid.linked_object_id,
                suite_id=valid.suite_id,
                recipient_rows_written=valid.write_recipient_rows_now,
            )
            recipients = comm.planned_recipients() if valid.write_recipient_rows_now else []
            try:
                self._store.create(comm, recipients)
            except ReferenceTaken:
                continue
            return comm
        raise RuntimeError("could not find a free reference")

    def _deliver_now(self, comm: Communication) -> CommResponse:
        retrying = False
        try:
            report = self._delivery.deliver(comm.comm_id)
        except RetryLater as later:
            report = later.report
            retrying = self._hand_to_queue(comm, later.report.retry_after_seconds)
        except DeliveryInProgress as busy:
            return self._interrupted(comm, busy.retry_in_seconds)
        except AzureError:
            return self._interrupted(comm, None)
        assert report is not None  # the communication was stored just above
        return CommResponse(
            CommId=comm.comm_id,
            Reference=comm.reference,
            Status=report.sent == report.total,
            Message=_outcome_message(report, retrying),
        )

    def _interrupted(self, comm: Communication, wait: float | None) -> CommResponse:
        log.warning("immediate delivery of %s interrupted", comm.comm_id.hex, exc_info=True)
        queued = self._hand_to_queue(comm, wait)
        message = "Accepted; delivery was interrupted"
        message += " and will finish in the background" if queued else "; the sweep will finish it"
        return CommResponse(CommId=comm.comm_id, Reference=comm.reference, Status=False, Message=message)

    def _hand_to_queue(self, comm: Communication, wait: float | None) -> bool:
        """Queue the rest of the delivery as the worker queues a retry: same delay, the run counted."""
        delay = retry_delay(IMMEDIATE_RUN, wait, base_seconds=self._settings.retry_base_seconds)
        try:
            hand_to_queue(self._queue, self._store, comm.comm_id, delay_seconds=delay, attempt=IMMEDIATE_RUN)
        except AzureError:
            log.warning("comm %s could not be queued for retry", comm.comm_id.hex, exc_info=True)
            return False
        return True


def _outcome_message(report: DeliveryReport, retrying: bool) -> str:
    message = f"Sent to {report.sent} of {_plural(report.total, 'recipient')}; {report.failed} failed"
    if report.pending:
        tail = "queued for retry" if retrying else "left for the background sweep"
        message += f"; {report.pending} {tail}"
    if report.failed and report.last_error:
        message += f" (last error: {report.last_error})"
    return message
