"""The SMSSend operation: validate, store, then queue or deliver.

This is the only place that decides what a send means; the HTTP adapter only translates
requests and responses, and the queue adapter only feeds delivery.
"""

from __future__ import annotations

import logging
import uuid

from azure.core.exceptions import AzureError

from gateway import telemetry
from gateway.auth import Principal
from gateway.delivery import (
    Delivery,
    DeliveryInProgress,
    DeliveryReport,
    RetryLater,
    hand_to_queue,
    retry_delay,
    until_expiry,
)
from gateway.errors import outcome_unknown
from gateway.idempotency import accept_once, delivery_in_progress, request_hash
from gateway.models import CommResponse, SMSSend
from gateway.queue import DeliveryQueue
from gateway.redact import describe
from gateway.references import random_reference
from gateway.resend import accept_resend, resend_message, resend_outcome_unknown
from gateway.schedule import wait_seconds
from gateway.segments import count_segments
from gateway.settings import Settings
from gateway.storage import (
    AcceptOutcomeUnknown,
    CommStatus,
    Communication,
    CommunicationStore,
    Recipient,
    ReferenceTaken,
    comm_id_for,
    utcnow,
)
from gateway.validation import NO_REPLIES, ValidSend, can_receive_replies, validate_send

log = logging.getLogger("gateway.service")

REFERENCE_ATTEMPTS = 5
IMMEDIATE_RUN = 1  # an immediate send's delivery run is the communication's first: the queue's runs follow it


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def new_communication(licensee_id: uuid.UUID, reference: str,
                      valid: ValidSend) -> tuple[Communication, list[Recipient]]:
    """The communication a valid send becomes under ``reference``, and the recipient rows to write at accept."""
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
        status=CommStatus.SCHEDULED if valid.send_at is not None else CommStatus.QUEUED,
        send_at=valid.send_at,
        valid_until=valid.valid_until,
        smart_encoded=valid.smart_encoded,
    )
    return comm, comm.planned_recipients() if valid.write_recipient_rows_now else []


class SendService:
    def __init__(self, settings: Settings, store: CommunicationStore, queue: DeliveryQueue, delivery: Delivery) -> None:
        self._settings = settings
        self._store = store
        self._queue = queue
        self._delivery = delivery

    def send(self, principal: Principal, request: SMSSend, *, immediate: bool,
             idempotency_key: str | None = None) -> CommResponse:
        """Accept the send, then queue it or deliver it now.

        With an ``idempotency_key`` a retry of a send already stored stores and sends nothing new
        (``gateway.idempotency``): a queued send answers as it did (and is queued again, late, if it is
        not final yet), an immediate one answers its current outcome after delivering what is still due.
        """
        started = telemetry.now_ns()
        licensee_id = principal.licensee_for(request.SMSModel.LicenseeId if request.SMSModel else None)
        valid = validate_send(request, self._settings, immediate=immediate)
        try:
            if idempotency_key is None:
                comm = self._store_new(licensee_id, valid)
            else:
                hashed = request_hash(valid, immediate=immediate)
                accepted = accept_once(self._store, licensee_id, idempotency_key, hashed,
                                       lambda reference: new_communication(licensee_id, reference, valid),
                                       now=utcnow())
                comm = accepted.communication
                if not accepted.fresh:
                    return self._replay(comm, immediate)
        except AcceptOutcomeUnknown as error:
            log.warning("accepting a send got no answer from storage: %s", describe(error.__cause__ or error))
            raise outcome_unknown(with_key=idempotency_key is not None) from None
        recipients = len(comm.recipients_spec)
        telemetry.count("accepted", self._settings.provider, recipients)
        with telemetry.accepting(comm.comm_id, started=started, operation="send", recipients=recipients,
                                 immediate=immediate):
            if immediate:
                return self._deliver_now(comm)
            self._enqueue(comm)
            return _queued(comm)

    def resend(self, principal: Principal, comm_id: str, *, idempotency_key: str | None = None) -> CommResponse:
        """A new communication for the recipients ``comm_id`` did not reach, queued like a fresh send
        (``gateway.resend``): delivery applies the opt-out list and pacing to it as to any send.

        A retry (the same Idempotency-Key, or none while the first is not yet linked) answers the resend already
        stored, queued again, late, if it is not final yet.
        """
        try:
            accepted = accept_resend(self._store, principal.licensee_id, comm_id, idempotency_key, now=utcnow())
        except AcceptOutcomeUnknown as error:
            log.warning("accepting a resend got no answer from storage: %s", describe(error.__cause__ or error))
            raise resend_outcome_unknown() from None
        comm = accepted.communication
        if accepted.fresh:
            telemetry.count("accepted", self._settings.provider, len(comm.recipients_spec))
            with telemetry.accepting(comm.comm_id, started=telemetry.now_ns(), operation="resend",
                                     recipients=len(comm.recipients_spec), immediate=False):
                self._enqueue(comm)
        elif not comm.status.is_final:
            self._requeue(comm)
        return CommResponse(CommId=comm.comm_id, Reference=comm.reference, Status=True,
                            Message=_stated(comm, resend_message(comm)))

    def _store_new(self, licensee_id: uuid.UUID, valid: ValidSend) -> Communication:
        for _ in range(REFERENCE_ATTEMPTS):
            comm, recipients = new_communication(licensee_id, random_reference(), valid)
            try:
                self._store.create(comm, recipients)
            except ReferenceTaken:
                continue
            return comm
        raise RuntimeError("could not find a free reference")

    def _enqueue(self, comm: Communication) -> None:
        """Queue the first run: now, or a scheduled send's at its SendAt (at most a queue's 7 days ahead; a run that
        comes early waits again)."""
        delay = wait_seconds(comm.send_at, utcnow()) if comm.send_at is not None else 0
        try:
            self._queue.enqueue(comm.comm_id, delay_seconds=delay)
        except AzureError as error:
            # Stored but not queued: the sweep finds Queued communications without a message, and Scheduled ones
            # by the schedule index.
            log.warning("comm %s stored but not queued; the sweep will queue it: %s", comm.comm_id.hex,
                        describe(error))

    def _replay(self, comm: Communication, immediate: bool) -> CommResponse:
        """The answer to a retry of a send already stored: nothing new is stored, nobody is sent twice."""
        log.info("comm %s: a retry with its Idempotency-Key; nothing new stored", comm.comm_id.hex)
        if immediate:
            return self._deliver_now(comm, replay=True)
        if not comm.status.is_final:
            self._requeue(comm)
        return _queued(comm)

    def _requeue(self, comm: Communication) -> None:
        """Queue a retried send again, in case its first request died before queueing it (or mid-delivery).

        After the first retry delay, so the first request's own message, if there is one, has been taken
        by then: a second run then finds the work done (or claimed) and costs a read, never a second SMS. A send
        still Scheduled is queued for its SendAt instead.
        """
        delay = retry_delay(IMMEDIATE_RUN, None, base_seconds=self._settings.retry_base_seconds)
        if comm.status is CommStatus.SCHEDULED and comm.send_at is not None:
            delay = wait_seconds(comm.send_at, utcnow())
        try:
            self._queue.enqueue(comm.comm_id, delay_seconds=delay)
        except AzureError as error:
            log.warning("comm %s could not be queued again; the sweep will find it: %s", comm.comm_id.hex,
                        describe(error))

    def _deliver_now(self, comm: Communication, *, replay: bool = False) -> CommResponse:
        """Deliver inside the request; a replay finds the rows another run holds and answers 409."""
        retrying = False
        try:
            report = self._delivery.deliver(comm.comm_id)
        except RetryLater as later:
            report = later.report
            retrying = self._hand_to_queue(comm, later.report.retry_after_seconds)
        except DeliveryInProgress as busy:
            if replay:
                raise delivery_in_progress(busy.retry_in_seconds) from None
            return self._interrupted(comm, busy.retry_in_seconds, busy)
        except AzureError as error:
            return self._interrupted(comm, None, error)
        assert report is not None  # the communication was stored just above
        return CommResponse(
            CommId=comm.comm_id,
            Reference=comm.reference,
            Status=report.sent == report.total,
            Message=_stated(comm, _outcome_message(report, retrying)),
        )

    def _interrupted(self, comm: Communication, wait: float | None, error: Exception) -> CommResponse:
        log.warning("immediate delivery of %s interrupted: %s", comm.comm_id.hex, describe(error))
        queued = self._hand_to_queue(comm, wait)
        message = "Accepted; delivery was interrupted"
        message += " and will finish in the background" if queued else "; the sweep will finish it"
        return CommResponse(CommId=comm.comm_id, Reference=comm.reference, Status=False,
                            Message=_stated(comm, message))

    def _hand_to_queue(self, comm: Communication, wait: float | None) -> bool:
        """Queue the rest of the delivery as the worker queues a retry: same delay, the run counted."""
        delay = until_expiry(retry_delay(IMMEDIATE_RUN, wait, base_seconds=self._settings.retry_base_seconds),
                             comm.valid_until, utcnow())
        try:
            hand_to_queue(self._queue, self._store, comm.comm_id, delay_seconds=delay, attempt=IMMEDIATE_RUN)
        except AzureError as error:
            log.warning("comm %s could not be queued for retry: %s", comm.comm_id.hex, describe(error))
            return False
        return True


def _queued(comm: Communication) -> CommResponse:
    recipients = _plural(len(comm.recipients_spec), "recipient")
    if comm.status is CommStatus.SCHEDULED and comm.send_at is not None:
        message = f"Scheduled for delivery to {recipients} at {comm.send_at.isoformat().replace('+00:00', 'Z')}"
    else:
        message = f"Queued for delivery to {recipients}"
    return CommResponse(CommId=comm.comm_id, Reference=comm.reference, Status=True,
                        Message=_stated(comm, message))


def _stated(comm: Communication, message: str) -> str:
    """A send's answer: ``message``, what each recipient's message costs (encoding, segments), any reply warning."""
    each = " each" if len(comm.recipients_spec) > 1 else ""
    return _with_reply_warning(comm, f"{message}; {count_segments(comm.body).describe()}{each}")


def _with_reply_warning(comm: Communication, message: str) -> str:
    """``message``, warning that replies cannot arrive when the send allows them from a sender nobody can answer."""
    if comm.reply_is_allowed and not can_receive_replies(comm.sender):
        return f"{message}. Replies cannot arrive: the sender '{comm.sender}' {NO_REPLIES}"
    return message


def _outcome_message(report: DeliveryReport, retrying: bool) -> str:
    failed = report.failed - report.opted_out
    message = f"Sent to {report.sent} of {_plural(report.total, 'recipient')}; {failed} failed"
    if report.opted_out:
        message += f"; {report.opted_out} opted out"
    if report.pending:
        tail = "queued for retry" if retrying else "left for the background sweep"
        message += f"; {report.pending} {tail}"
    if report.failed > report.opted_out and report.last_error:
        message += f" (last error: {report.last_error})"
    return message
