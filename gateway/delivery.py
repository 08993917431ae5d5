"""Delivery: take a stored communication to a final state, one provider batch at a time.

Each batch is claimed before it is sent (its rows marked Sending in one conditional
transaction) and recorded after (outcomes plus the communication's counts in another), so
at-least-once queue delivery never sends a recipient twice: a redelivered message finds
those recipients Sent or Failed and skips them. A communication larger than one batch is
fanned out: its queue message becomes one message per unit (a batch's worth of recipients),
which separate instances deliver in parallel, and each unit's run settles the communication's
counts from its recipient rows. A scheduled communication is released (Scheduled to Queued) by the first run at
or after its SendAt; a recipient still unsent at its ValidUntil ends Expired, never handed to the provider.
docs/delivery.md explains the rules.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.core.exceptions import AzureError

from gateway import telemetry
from gateway.message_index import IndexEntry, MessageIndex
from gateway.optouts import OptOutList
from gateway.pacing import NoPacing, Pacer
from gateway.providers.base import OutboundSms, Outcome, ReceiptSource, SendResult, SmsProvider
from gateway.providers.common import MAYBE_SENT, OUT_OF_TIME
from gateway.queue import DeliveryQueue
from gateway.receipt_checks import CheckPolicy, ReceiptChecks, Watch
from gateway.receipts import header_status, overall_status
from gateway.redact import describe, mask_phone
from gateway.reply_index import ReplyIndex, Sent
from gateway.schedule import ScheduledSend, ScheduleIndex, wait_seconds
from gateway.storage import (
    TRANSACTION_LIMIT,
    CommStatus,
    Communication,
    CommunicationStore,
    ConcurrentUpdate,
    EventMark,
    Recipient,
    RecipientState,
    aggregate_status,
    count_recipients,
    unsent_status,
    utcnow,
)
from gateway.webhook_emit import completed_event, recipients_events
from gateway.webhook_events import EventSink, WebhookEvent
from gateway.webhook_publish import Emitter

log = logging.getLogger("gateway.delivery")

UNKNOWN_OUTCOME = "OutcomeUnknown"
# After a time-out, the provider may still be working on the request (and Twilio lists a Message by its
# sent date): the retry that reconciles it waits at least this long, also when handed to the queue at once,
# and so does the reconciliation of a claim a worker left (counted from the claim's expiry, when its last call ended).
RECONCILE_AFTER_SECONDS = 60.0
# A run starts no batch after this long; the rest goes on in a fresh queue message (``MoreToSend``). With one
# batch's claim (at most settings.MAX_CLAIM_TIMEOUT_SECONDS) a run ends inside host.json's functionTimeout (5
# minutes): a run the host stops half-way is a crash. With the default claim (60 s) an immediate send also
# answers inside the 230 s Azure lets an HTTP request take.
RUN_SECONDS = 120.0
ABANDONED = "DeliveryAbandoned"
EXPIRED = "Expired"  # the error code of a recipient still unsent when its communication's ValidUntil passed
OPTED_OUT = "OptedOut"  # the error code of a recipient on its licensee's opt-out list when its batch came due
# The longest a communication waits in the queue for its next run, whatever a provider asks: hours
# out of sight only delay the recovery after the provider is well again (and a broken header could ask for a year).
MAX_RETRY_DELAY_SECONDS = 3600
# Tries to write the communication's counts on the ETag they were computed from, when other units keep writing it.
SETTLE_TRIES = 8

FanOut = Callable[[Sequence[range], Sequence[int]], None]  # queues a message per unit, visible after its delay (s)


@dataclass(frozen=True)
class ReceiptFollowUp:
    """What delivery leaves for the receipts of what it sent: the message-id index, and the watch rows of
    the missing-receipt check (for a provider that can be asked). Either part may be absent."""

    index: MessageIndex | None = None
    checks: ReceiptChecks | None = None
    policy: CheckPolicy | None = None
    concurrency: int = 1  # index writes in flight at once: the provider's own bound


def retry_delay(attempt: int, retry_after: float | None, *, base_seconds: float) -> int:
    """Seconds the queue keeps a communication out of sight after delivery run ``attempt`` left it pending.

    Exponential back-off (``base_seconds``, doubling each run), or the wait the run was asked for
    (a provider's Retry-After, a claim's expiry) when that is longer, capped at one hour. The worker
    and the immediate send both hand their retries to the queue with it, so a retry waits the same
    whichever path ran first.
    """
    backoff = base_seconds * 2 ** max(0, attempt - 1)
    return math.ceil(min(MAX_RETRY_DELAY_SECONDS, max(backoff, retry_after or 0)))


def until_expiry(delay_seconds: int, valid_until: datetime | None, now: datetime) -> int:
    """``delay_seconds``, cut so the next run comes at ``valid_until`` at the latest: the recipients still unsent
    then end Expired on time, not an hour of back-off later."""
    if valid_until is None:
        return delay_seconds
    return max(0, min(delay_seconds, math.ceil((valid_until - now).total_seconds())))


def hand_to_queue(
    queue: DeliveryQueue, store: CommunicationStore, comm_id: uuid.UUID, *, delay_seconds: int, attempt: int,
    unit: range | None = None,
) -> None:
    """Queue the communication's next run after ``delay_seconds``, and note when on its row.

    The note keeps the sweep from taking a communication that waits out a back-off, a Retry-After or
    another worker's claim for lost. Without it (storage refused the note) the sweep may queue it early,
    which costs a run that steps back, never a second SMS.
    """
    queue.enqueue(comm_id, delay_seconds=delay_seconds, attempt=attempt, unit=unit)
    if delay_seconds:
        try:
            store.expect_run(comm_id, utcnow() + timedelta(seconds=delay_seconds))
        except AzureError as error:
            log.warning("comm %s: could not note its next run on its row: %s", comm_id.hex, describe(error))


@dataclass(frozen=True)
class DeliveryReport:
    comm_id: uuid.UUID
    status: CommStatus
    total: int
    sent: int
    failed: int
    pending: int
    retry_after_seconds: float | None = None
    last_error: str | None = None
    opted_out: int = 0  # of ``failed``: recipients not sent because their number is on the opt-out list
    valid_until: datetime | None = None  # the communication's ValidUntil: a retry comes back by then (``until_expiry``)


class RetryLater(Exception):
    """Some recipients hit a transient failure; the queue should bring the message back."""

    def __init__(self, report: DeliveryReport, reason: str | None = None) -> None:
        super().__init__(reason or f"{report.pending} recipient(s) of {report.comm_id.hex} still pending: "
                         f"{report.last_error}")
        self.report = report


class MoreToSend(RetryLater):
    """The run used its time (``RUN_SECONDS``) with recipients still due: a fresh run goes on at once.

    Not a failure: the queue adapter hands the rest on without spending an attempt of the retry budget
    (an immediate send hands them to the queue like any retry).
    """

    def __init__(self, report: DeliveryReport, left: int, *, wait_seconds: float = 0) -> None:
        reason = (f"paced: {left} recipient(s) of {report.comm_id.hex} wait {wait_seconds:.1f} s for their sender"
                  if wait_seconds else
                  f"{left} recipient(s) of {report.comm_id.hex} left for a fresh run: this one used its time")
        super().__init__(report, reason)
        self.wait_seconds = wait_seconds  # > 0: the sender's next free window (gateway/pacing.py) is that far off


class NotDueYet(MoreToSend):
    """A run of a scheduled communication before its SendAt: nothing was sent; the queue brings it back then.

    Not a failure (no attempt spent): the queue's first delay is capped at seven days, and a replay's requeue or
    the sweep may bring a message early. ``wait_seconds`` is the rest of the wait, as long as a queue allows.
    """

    def __init__(self, report: DeliveryReport, due: datetime, now: datetime) -> None:
        super().__init__(report, report.pending, wait_seconds=wait_seconds(due, now))
        self.due = due

    def __str__(self) -> str:
        return f"{self.report.comm_id.hex} is scheduled for {self.due.isoformat()}: nothing sent yet"


class DeliveryInProgress(Exception):
    """Another worker holds a fresh claim on this communication; try again once it expires."""

    def __init__(self, comm_id: str, retry_in_seconds: float = 30) -> None:
        super().__init__(f"{comm_id} is claimed by another worker; look again in {retry_in_seconds:.0f} s")
        self.retry_in_seconds = retry_in_seconds


class Delivery:
    def __init__(
        self,
        store: CommunicationStore,
        provider: SmsProvider,
        *,
        claim_timeout_seconds: float,
        run_seconds: float = RUN_SECONDS,
        clock: Callable[[], datetime] = utcnow,
        pacer: Pacer | None = None,
        follow_up: ReceiptFollowUp | None = None,
        optouts: OptOutList | None = None,
        replies: ReplyIndex | None = None,
        events: EventSink | None = None,
        schedule: ScheduleIndex | None = None,
    ) -> None:
        self._store = store
        self._schedule = schedule  # the index of sends waiting for their SendAt: a released one leaves it
        # Webhook events of every recipient made final and of the communication completed (None: no webhooks).
        self._emitter = Emitter(events, store) if events is not None else None
        self._replies = replies
        self._provider = provider
        self._optouts = optouts
        self._follow_up = follow_up or ReceiptFollowUp()
        # Receipts can reach this provider's messages (the outbox says it sends none): a final record settles them.
        self._receipts = bool(getattr(provider, "sends_receipts", True))
        self._picks_sender = bool(getattr(provider, "picks_sender", False))
        # Every receipt names CommId and index (the callback URL the provider was given carries them): no index.
        self._named_by_callbacks = bool(getattr(provider, "receipts_name_the_recipient", False))
        self._claim_timeout = claim_timeout_seconds
        self._run_seconds = run_seconds
        self._clock = clock
        self._pacer = pacer or NoPacing()
        # A batch's record is one transaction: its rows, the header, and with webhooks the events' mark.
        rows_per_batch = TRANSACTION_LIMIT - (2 if events is not None else 1)
        self._batch_size = self._pacer.batch_size(max(1, min(provider.max_batch_size, rows_per_batch)))

    def units(self, count: int) -> list[range]:
        """The units a communication of ``count`` recipients fans out into: one provider batch each."""
        return [range(start, min(start + self._batch_size, count)) for start in range(0, count, self._batch_size)]

    def deliver(
        self, comm_id: uuid.UUID, unit: range | None = None, *, fan_out: FanOut | None = None
    ) -> DeliveryReport | None:
        """Send every recipient still due (of ``unit`` when given); None when no such communication was accepted.

        With ``fan_out``, a whole communication larger than one batch is not sent here: its units with
        recipients still open are handed to ``fan_out`` (the queue), to be delivered in parallel.
        Raises RetryLater when transient failures leave recipients pending, MoreToSend when the run
        used its time (NotDueYet when it came before a scheduled communication's SendAt), and DeliveryInProgress
        when another worker is mid-way through the same recipients.
        Each batch is sent under its claim: the provider starts no call that could outlast it.
        """
        started = time.monotonic()
        snapshot = self._store.load(comm_id, rows=unit)  # a unit reads the header and its own rows only
        if snapshot is None:
            return None
        comm = snapshot.communication
        recipients = snapshot.all_recipients()
        if comm.status.is_final:
            if comm.status in {CommStatus.SENT, CommStatus.PARTIALLY_SENT}:
                self._settle_receipts(comm)  # a run that failed after its final record is redelivered: settle now
            return self._report(comm, recipients, None)
        if comm.status is CommStatus.SCHEDULED:
            self._release(comm, recipients)
        fanned_out = len(recipients) > self._batch_size
        if fanned_out and unit is None and fan_out is not None:
            return self._fan_out(comm, recipients, fan_out)
        scope = recipients if unit is None else [recipients[index] for index in unit if index < len(recipients)]
        try:
            return self._deliver(comm, recipients, scope, started, counts=unit is None)
        finally:
            if fanned_out:
                self._settle(comm)

    def _release(self, comm: Communication, recipients: Sequence[Recipient]) -> None:
        """Take a scheduled communication at or after its SendAt from Scheduled to Queued, then off the schedule
        index; raise NotDueYet before it.

        The header is written on the ETag it was read with, so a cancel writing meanwhile wins: this run steps back
        (DeliveryInProgress) and the next finds it Canceled. Queued, its open-work row (written at accept) leads the
        sweep to it; the index row a crash leaves behind the sweep drops (it is no longer Scheduled).
        """
        now = self._clock()
        if comm.send_at is not None and comm.send_at > now:
            raise NotDueYet(self._report(comm, recipients, None), comm.send_at, now)
        try:
            self._store.save_status(comm.comm_id, CommStatus.QUEUED, comm.etag, now)
        except ConcurrentUpdate as error:
            raise DeliveryInProgress(comm.comm_id.hex, 1) from error
        comm.status, comm.updated_at = CommStatus.QUEUED, now
        log.info("comm %s: released at its SendAt %s", comm.comm_id.hex,
                 comm.send_at.isoformat() if comm.send_at else "(none)")
        self.unschedule(comm)

    def unschedule(self, comm: Communication) -> None:
        """Remove the communication's schedule index row, once it is no longer Scheduled (best effort: a row left
        behind is dropped by the sweep)."""
        if self._schedule is None or comm.send_at is None:
            return
        try:
            self._schedule.remove(ScheduledSend(comm.comm_id, comm.send_at))
        except AzureError as error:
            log.warning("comm %s: its schedule row stays for the sweep to drop: %s", comm.comm_id.hex,
                        describe(error))

    def _fan_out(self, comm: Communication, recipients: Sequence[Recipient], fan_out: FanOut) -> DeliveryReport:
        """Queue a message per unit with recipients still open; with none open, put the counts right."""
        units = [unit for unit in self.units(len(recipients)) if _open(recipients[index] for index in unit)]
        if units:
            fan_out(units, self._pacer.stagger([len(unit) for unit in units]))
            log.info("comm %s: %d recipient(s) fanned out into %d unit(s)", comm.comm_id.hex, len(recipients),
                     len(units))
        else:
            comm.status = self._settle(comm) or comm.status
        return self._report(comm, recipients, None)

    def _deliver(
        self, comm: Communication, recipients: Sequence[Recipient], scope: Sequence[Recipient], started: float, *,
        counts: bool,
    ) -> DeliveryReport:
        """The run proper: reconcile what may have been sent, then claim, send and record ``scope`` batch by batch."""
        comm_id = comm.comm_id
        due, maybe_sent, busy_for = self._classify(scope)
        for start in range(0, len(maybe_sent), self._batch_size):
            batch = maybe_sent[start : start + self._batch_size]
            resend = self._reconcile(comm, batch)
            settled = [recipient for recipient in batch if recipient.status.is_final]
            if settled:
                self._record(comm, recipients, settled, counts=counts)
            due.extend(resend)
        retry_after: float | None = None
        nothing_due = not due
        paced_for = 0.0
        while due and time.monotonic() - started < self._run_seconds:
            batch, due = due[: self._batch_size], due[self._batch_size :]
            batch = self._without_expired(comm, recipients, batch, counts=counts)
            batch = self._without_opted_out(comm, recipients, batch, counts=counts)
            if not batch:
                continue
            # Pacing hook (gateway/pacing.py): the batch goes only in a window its sender has free; otherwise
            # its recipients stay Pending, unclaimed, and the queue brings the message back when one is due.
            # The claim is written while the window is still ahead, so the calls go out at its start.
            claimed = time.monotonic()
            wait = self._pacer.admit(comm.sender, len(batch),
                                     lambda batch=batch: self._claim(comm, recipients, batch, counts=counts))
            if wait is not None:
                due, paced_for = batch + due, wait
                break
            results = self._send(comm, batch, deadline=claimed + self._claim_timeout)
            self._pacer.slow_down(comm.sender, results)  # a 429 or Retry-After slows the sender everywhere
            retry_after = _longest(retry_after, self._apply(batch, results))
            self._list_refusals(comm, batch, results)
            self._record(comm, recipients, batch, counts=counts)
            unsent = [recipient for recipient in batch if recipient.error_code == OUT_OF_TIME]
            if len(unsent) < len(batch):
                due = unsent + due  # their claim ran out before their turn: a fresh claim takes them
        if busy_for is not None and nothing_due:
            raise DeliveryInProgress(comm_id.hex, busy_for)
        if counts and nothing_due and not _open(recipients) and not comm.status.is_final:
            # Every row ended before this run (a cancel or another run wrote them after a record counted them open):
            # the header takes the counts they say.
            comm.status = self._settle(comm) or comm.status
        report = self._report(comm, recipients, _longest(_longest(retry_after, busy_for), paced_for or None))
        if due and not (paced_for and retry_after is not None):  # paced after a failure: a failed run, counted
            raise MoreToSend(report, len(due), wait_seconds=paced_for)
        if _open(scope):
            raise RetryLater(report)
        return report

    def settle(self, comm: Communication) -> CommStatus | None:
        """Put the header's counts and status right from the recipient rows another writer (a cancel) ended;
        returns the status it leaves (None when the communication is gone or other writers kept winning)."""
        return self._settle(comm)

    def _settle(self, comm: Communication) -> CommStatus | None:
        """Write the communication's counts and status as its recipient rows (and the receipts the header
        counts) say, on the ETag read with them.

        A unit writes only its own rows (its record leaves the header's counts alone); this puts the
        counts right. The write is conditional: when another unit wrote the header since it was read, read
        again, so the last write always follows every recorded outcome. Rows only move towards final, so
        no count ever shows a communication final too early. The write that makes it final carries
        ``communication.completed``. Returns the status it leaves.
        """
        comm_id = comm.comm_id
        for _ in range(SETTLE_TRIES):
            tally = self._store.tally(comm_id)
            if tally is None:
                return None
            sent, failed, pending = tally.rows
            status = (aggregate_status(sent, failed, pending, unsent=tally.unsent) if sent + failed or not pending
                      else tally.status)
            status = overall_status(status, sent, tally.receipts)
            if (tally.sent_count, tally.failed_count, tally.status) == (sent, failed, status):
                return status
            now = self._clock()
            completed = (completed_event(comm, sent, failed, now, unsent=tally.unsent) if not tally.status.is_final
                         else None)
            events = [completed] if completed is not None and self._emitter is not None else []
            mark = self._mark(comm, events, now)
            try:
                self._store.save_counts(comm_id, tally, status, now, mark=mark)
            except ConcurrentUpdate:
                continue
            published = self._publish(mark, events)
            if status.is_final:
                log.info("comm %s %s: %d sent, %d failed", comm_id.hex, status, sent, failed)
                if published and not tally.status.is_final and not tally.marks:  # no other writer's pending
                    self._finish(comm)
            return status
        log.warning("comm %s: counts not settled after %d tries; the next unit or the sweep settles them",
                    comm_id.hex, SETTLE_TRIES)
        return None

    def give_up(self, comm_id: uuid.UUID, reason: str, unit: range | None = None) -> DeliveryReport | None:
        """Mark every recipient (of ``unit`` when given) not yet Sent or Failed as Failed, so the communication ends.

        Used when the retry budget is spent (the poison queue) or the sweep sees no progress: nothing
        stays Pending or Sending forever. Conditional writes make it step back if a worker is mid-way;
        a communication whose recipients are all final already gets its final status, and no "abandoned".
        """
        snapshot = self._store.load(comm_id, rows=unit)
        if snapshot is None:
            return None
        comm = snapshot.communication
        recipients = snapshot.all_recipients()
        try:
            return self._give_up(comm, recipients, reason, unit)
        finally:
            if len(recipients) > self._batch_size:
                self._settle(comm)

    def _give_up(
        self, comm: Communication, recipients: Sequence[Recipient], reason: str, unit: range | None
    ) -> DeliveryReport:
        comm_id = comm.comm_id
        now = self._clock()
        scope = recipients if unit is None else [recipients[index] for index in unit if index < len(recipients)]
        open_recipients = [recipient for recipient in scope if not recipient.status.is_final]
        if not open_recipients:
            # Nothing to abandon (a worker finished first): the header only takes the final state of its rows.
            if unit is None:
                _count_into(comm, recipients)
                comm.updated_at = now
                self._save(comm, [], counts=True)
                self._close(comm, self._settle_receipts(comm))
            return self._report(comm, recipients, None)
        expired = comm.valid_until is not None and now >= comm.valid_until  # it could not have gone anyway now
        for recipient in open_recipients:
            detail = f" (last error {recipient.error_code}: {recipient.error_message})" if recipient.error_code else ""
            recipient.status = RecipientState.EXPIRED if expired else RecipientState.FAILED
            recipient.error_code = EXPIRED if expired else ABANDONED
            recipient.error_message = f"{reason}; its ValidUntil has passed{detail}"[:1000] if expired else \
                f"{reason}{detail}"[:1000]
            recipient.updated_at = now
        comm.last_error = f"{ABANDONED}: {reason}"[:1000]
        for start in range(0, len(open_recipients), self._batch_size):
            batch = open_recipients[start : start + self._batch_size]
            _count_into(comm, recipients)
            comm.updated_at = now
            last = start + self._batch_size >= len(open_recipients)
            try:
                self._save(comm, batch, claim=True, counts=unit is None, completes=last)
            except ConcurrentUpdate as error:
                raise DeliveryInProgress(comm_id.hex) from error
        if unit is None and comm.status.is_final:
            self._close(comm, self._settle_receipts(comm))
        log.warning("comm %s abandoned: %s", comm_id.hex, reason)
        return self._report(comm, recipients, None)

    def _classify(self, recipients: Sequence[Recipient]) -> tuple[list[Recipient], list[Recipient], float | None]:
        """Split recipients into due now and maybe sent already; say how long the others must wait.

        A recipient whose last attempt may have reached the provider (a claim left by a worker
        that died, or a time-out after the request went out) is due again while the provider
        makes a resend safe; otherwise it is maybe sent, for ``_reconcile`` to settle, once a
        provider that reconciles has had ``RECONCILE_AFTER_SECONDS`` to settle that attempt. A
        live claim belongs to a worker that may still be running: those recipients wait for it.
        """
        now = self._clock()
        due: list[Recipient] = []
        maybe_sent: list[Recipient] = []
        waits: list[float] = []
        for recipient in recipients:
            if recipient.status is RecipientState.PENDING:
                if recipient.error_code in MAYBE_SENT and not self._resend_is_safe(recipient, now):
                    timed_out = (now - (recipient.updated_at or now)).total_seconds()
                    if self._can_reconcile and timed_out < RECONCILE_AFTER_SECONDS:
                        waits.append(RECONCILE_AFTER_SECONDS - timed_out + 1)  # the provider may still be at it
                    else:
                        maybe_sent.append(recipient)
                else:
                    due.append(recipient)
            elif recipient.status is RecipientState.SENDING:
                age = (now - (recipient.claimed_at or now)).total_seconds()
                settled = self._claim_timeout + (RECONCILE_AFTER_SECONDS if self._can_reconcile else 0)
                if age < self._claim_timeout:
                    waits.append(self._claim_timeout - age + 1)
                elif self._resend_is_safe(recipient, now):
                    due.append(recipient)
                elif age < settled:
                    waits.append(settled - age + 1)  # its last call ended at the claim's expiry at the latest
                else:
                    maybe_sent.append(recipient)
        return due, maybe_sent, max(waits) if waits else None

    def _reconcile(self, comm: Communication, batch: Sequence[Recipient]) -> list[Recipient]:
        """Settle recipients that may have been sent already; return those the provider never got.

        A provider that can tell (``find_sent``) is asked: a recipient it has becomes Sent with the
        provider's id, one it has not is returned to be sent again (safe: the provider never got
        it). When the provider cannot tell, or cannot be asked, every one ends Failed with
        ``OutcomeUnknown``, never resent, to avoid a duplicate SMS.
        """
        find_sent = getattr(self._provider, "find_sent", None)
        found = None
        if find_sent is not None:
            try:
                found = find_sent(self._messages(comm, batch))
            except Exception:  # the protocol lets a provider raise when it cannot tell
                log.exception("comm %s: %s could not reconcile %d recipient(s)", comm.comm_id.hex,
                              self._provider.name, len(batch))
        now = self._clock()
        if found is None:
            for recipient in batch:
                self._unknown(recipient, now)
                if find_sent is not None:
                    recipient.error_message += "; the provider could not say whether it has it"
            return []
        resend = [recipient for recipient in batch if recipient.recipient_id not in found]
        for recipient in batch:
            if recipient.recipient_id in found:
                recipient.status = RecipientState.SENT
                recipient.provider_message_id = found[recipient.recipient_id]
                recipient.error_code = None
                recipient.error_message = "Reconciled: the provider had this message from an earlier attempt"
                recipient.updated_at = now
        log.info("comm %s: reconciled %d recipient(s): %d already sent, %d to send again", comm.comm_id.hex,
                 len(batch), len(batch) - len(resend), len(resend))
        return resend

    @property
    def _can_reconcile(self) -> bool:
        return getattr(self._provider, "find_sent", None) is not None

    @staticmethod
    def _unknown(recipient: Recipient, now: datetime) -> Recipient:
        recipient.status = RecipientState.FAILED
        recipient.error_code = UNKNOWN_OUTCOME
        recipient.error_message = (
            "An earlier attempt may have reached the provider, but its answer was never recorded; "
            "not sent again, to avoid a duplicate SMS"
        )
        recipient.updated_at = now
        return recipient

    def _resend_is_safe(self, recipient: Recipient, now: datetime) -> bool:
        if not self._provider.resend_is_safe:
            return False
        window = getattr(self._provider, "resend_window_seconds", None)
        if window is None:
            return True
        first = recipient.first_attempt_at or recipient.claimed_at or now
        return (now - first).total_seconds() < window

    def _claim(
        self, comm: Communication, recipients: Sequence[Recipient], batch: Sequence[Recipient], *, counts: bool
    ) -> None:
        now = self._clock()
        for recipient in batch:
            recipient.status = RecipientState.SENDING
            recipient.claimed_at = now
            recipient.first_attempt_at = recipient.first_attempt_at or now
            recipient.attempts += 1
            recipient.updated_at = now
        comm.status = CommStatus.SENDING
        comm.updated_at = now
        try:
            self._store.save(comm, batch, claim=True, counts=counts)
        except ConcurrentUpdate as error:
            raise DeliveryInProgress(comm.comm_id.hex, self._claim_timeout) from error
        comm.recipient_rows_written = all(recipient.etag is not None for recipient in recipients)

    def _without_opted_out(
        self, comm: Communication, recipients: Sequence[Recipient], batch: list[Recipient], *, counts: bool
    ) -> list[Recipient]:
        """The batch less the recipients on the licensee's opt-out list, asked now, just before the claim.

        Those end OptedOut, written at once and conditionally (as a claim is), and never reach the provider:
        a number that opted out after the send was accepted is not sent to either. The look-up is one query
        (``OptOutList.suppressed``); when storage cannot answer, the run fails (nothing is sent) and the queue
        retries it.
        """
        if self._optouts is None:
            return batch
        numbers = self._optouts.suppressed(comm.licensee_id, [recipient.phone_number for recipient in batch])
        if not numbers:
            return batch
        opted = [recipient for recipient in batch if recipient.phone_number in numbers]
        self._end_unsent(comm, recipients, opted, RecipientState.OPTED_OUT, OPTED_OUT,
                         "The number is on the licensee's opt-out list: not sent", counts=counts)
        log.info("comm %s: %d recipient(s) on the opt-out list, not sent", comm.comm_id.hex, len(opted))
        telemetry.count("opted_out", self._provider.name, len(opted))
        return [recipient for recipient in batch if recipient.phone_number not in numbers]

    def _without_expired(
        self, comm: Communication, recipients: Sequence[Recipient], batch: list[Recipient], *, counts: bool
    ) -> list[Recipient]:
        """The batch, or none of it once the communication's ValidUntil has passed: then every recipient of the
        batch ends Expired, written as an opt-out is (conditionally, before any claim), and none reaches the
        provider."""
        if comm.valid_until is None or self._clock() < comm.valid_until:
            return batch
        self._end_unsent(comm, recipients, batch, RecipientState.EXPIRED, EXPIRED,
                         f"Still unsent when its ValidUntil ({comm.valid_until.isoformat()}) passed: not sent",
                         counts=counts)
        log.info("comm %s: %d recipient(s) expired unsent", comm.comm_id.hex, len(batch))
        return []

    def _end_unsent(self, comm: Communication, recipients: Sequence[Recipient], ended: Sequence[Recipient],
                    state: RecipientState, code: str, message: str, *, counts: bool) -> None:
        """Write ``ended`` final in ``state``, never sent, with the header's counts (and their events).

        Conditional, as a claim is: a row another worker claimed or wrote since this run read it makes the run step
        back (DeliveryInProgress), so a recipient is never both ended here and handed to the provider there.
        """
        now = self._clock()
        for recipient in ended:
            recipient.status = state
            recipient.error_code = code
            recipient.error_message = message
            recipient.updated_at = now
        _count_into(comm, recipients)
        comm.updated_at = now
        try:
            self._save(comm, ended, claim=True, counts=counts)
        except ConcurrentUpdate as error:
            raise DeliveryInProgress(comm.comm_id.hex, self._claim_timeout) from error
        if counts and comm.status.is_final:
            self._close(comm, self._settle_receipts(comm))

    def _list_refusals(self, comm: Communication, batch: Sequence[Recipient], results: Sequence[SendResult]) -> None:
        """Put each number the provider refused as unsubscribed (Twilio's 21610) on the licensee's opt-out list,
        so the licensee's other senders do not try it either. Best effort: the recipient is OptedOut anyway, and
        the provider keeps refusing the number from that sender."""
        if self._optouts is None:
            return
        refused = {result.recipient_id: result for result in results if result.opted_out}
        for recipient in batch:
            result = refused.get(recipient.recipient_id)
            if result is None:
                continue
            try:
                self._optouts.add(comm.licensee_id, recipient.phone_number, reason=result.error_code or OPTED_OUT,
                                  source=self._provider.name)
            except AzureError as error:
                log.warning("comm %s: %s not added to the opt-out list: %s", comm.comm_id.hex,
                            mask_phone(recipient.phone_number), describe(error))

    def _send(self, comm: Communication, batch: Sequence[Recipient], *, deadline: float) -> list[SendResult]:
        with telemetry.calling_provider(self._provider.name, comm.comm_id, len(batch)):
            results = self._provider.send(self._messages(comm, batch), deadline=deadline)
        for outcome, count in _outcomes(results).items():
            telemetry.count(outcome, self._provider.name, count)
        return results

    @staticmethod
    def _messages(comm: Communication, batch: Sequence[Recipient]) -> list[OutboundSms]:
        return [
            OutboundSms(
                comm_id=comm.comm_id,
                recipient_id=recipient.recipient_id,
                to=recipient.phone_number,
                sender=comm.sender,
                body=comm.body,
                first_attempt_at=recipient.first_attempt_at,
                index=recipient.index,
            )
            for recipient in batch
        ]

    def _apply(self, batch: Sequence[Recipient], results: Sequence[SendResult]) -> float | None:
        by_id = {result.recipient_id: result for result in results}
        now = self._clock()
        retry_after: float | None = None
        for recipient in batch:
            result = by_id.get(recipient.recipient_id) or SendResult(
                recipient.recipient_id, Outcome.RETRY, error_code="NoResult", error_message="provider gave no result"
            )
            recipient.updated_at = now
            recipient.error_code = result.error_code
            recipient.error_message = result.error_message
            if result.outcome is Outcome.ACCEPTED:
                recipient.status = RecipientState.SENT
                recipient.provider_message_id = result.provider_message_id
                recipient.segments = result.segments
            elif result.outcome is Outcome.FAILED:
                recipient.status = RecipientState.OPTED_OUT if result.opted_out else RecipientState.FAILED
            elif result.error_code in MAYBE_SENT and not self._resend_is_safe(recipient, now):
                if self._can_reconcile:
                    # Pending with its code: the next run asks the provider, once it has had time to settle.
                    recipient.status = RecipientState.PENDING
                    retry_after = _longest(retry_after, RECONCILE_AFTER_SECONDS)
                else:
                    self._unknown(recipient, now).error_message += f" ({result.error_code}: {result.error_message})"
            else:
                recipient.status = RecipientState.PENDING
                retry_after = _longest(retry_after, result.retry_after_seconds)
        return retry_after

    def _record(
        self, comm: Communication, recipients: Sequence[Recipient], batch: Sequence[Recipient], *, counts: bool
    ) -> None:
        """Write the batch's outcomes and the communication's counts; index what was sent before, watch it after.

        The header's status takes the receipts counted when the run read it; a communication this record makes
        final is settled once more, for receipts that arrived since (``_settle_receipts``).
        """
        sent, failed = _count_into(comm, recipients)
        errors = [f"{r.error_code}: {r.error_message}" for r in batch if r.error_code]
        if errors:
            comm.last_error = errors[-1][:1000]
        comm.updated_at = self._clock()
        accepted = [r for r in batch if r.status is RecipientState.SENT and r.provider_message_id]
        self._index(comm, accepted)
        self._save(comm, batch, counts=counts)
        self._watch(comm, accepted)
        self._index_replies(comm, batch)
        if counts and comm.status.is_final:
            self._close(comm, self._settle_receipts(comm))
            log.info("comm %s %s: %d sent, %d failed", comm.comm_id.hex, comm.status, sent, failed)

    def _save(self, comm: Communication, batch: Sequence[Recipient], *, counts: bool, claim: bool = False,
              completes: bool = True) -> None:
        """Write the batch's final outcomes and the header (``CommunicationStore.save``), and publish their events.

        The events (``webhook_emit``: one per recipient made final, and ``communication.completed`` when this write
        makes the communication final and ``completes``: a give-up tells it with its last batch) are marked in the
        same transaction, then published
        (``gateway/webhook_publish.py``): a crash in between leaves them to the sweep, never lost.
        """
        events: list[WebhookEvent] = []
        if self._emitter is not None:
            events = recipients_events(comm, batch)
            completed = (completed_event(comm, comm.sent_count, comm.failed_count, comm.updated_at, unsent=comm.status)
                         if counts and completes else None)
            events += [completed] if completed is not None else []
        mark = self._mark(comm, events, comm.updated_at)
        self._store.save(comm, batch, claim=claim, counts=counts, mark=mark)
        self._publish(mark, events)

    def _mark(self, comm: Communication, events: Sequence[WebhookEvent], changed_at: datetime) -> EventMark | None:
        """The mark of a change delivery makes: in the partition, which the communication's open-work row covers
        (it is open until this run's final write, and that row goes only after the write's events are published)."""
        return self._emitter.mark(comm.comm_id, events, changed_at, covered=True) if self._emitter is not None \
            else None

    def _publish(self, mark: EventMark | None, events: Sequence[WebhookEvent]) -> bool:
        """Publish a change's events; whether nothing of it is left for the sweep."""
        return self._emitter.publish(mark, events) if self._emitter is not None else True

    def _close(self, comm: Communication, marks: int | None) -> None:
        """Take a communication this run made final off the open-work index, if its partition holds no mark: read
        after this run's publish, a mark left means a publish (this run's or another writer's) failed or is still
        under way, and the row must lead the sweep to it. ``marks`` is what ``_settle_receipts`` read; None (a
        provider without receipts) costs one query here."""
        if self._store.open_work is None or not comm.status.is_final:
            return
        if marks is None:
            _, marks = self._store.header_and_marks(comm.comm_id)
        if not marks:
            self._finish(comm)

    def _finish(self, comm: Communication) -> None:
        """Take a communication just made final, its events published, off the open-work index (best effort: a row
        left behind costs the sweep a read and a delete)."""
        try:
            self._store.finish(comm.comm_id)
        except AzureError as error:
            log.warning("comm %s: its open-work row stays for the sweep to drop: %s", comm.comm_id.hex,
                        describe(error))

    def _index(self, comm: Communication, accepted: Sequence[Recipient]) -> None:
        """Map each provider message id to its recipient, before the record, so a receipt in between is matched.

        A write that fails is logged and skipped (``MessageIndex.record``): the outcomes are recorded anyway.
        """
        index = self._follow_up.index
        if index is None or not self._receipts or not accepted or self._named_by_callbacks:
            return
        entries = [IndexEntry(r.provider_message_id or "", comm.comm_id, r.index) for r in accepted]
        index.record(self._provider.name, entries, concurrency=self._follow_up.concurrency)

    def _index_replies(self, comm: Communication, batch: Sequence[Recipient]) -> None:
        """The reply index's rows for the recipients now Sent, so a reply finds this communication (best effort).

        Not for a provider that sends nothing (the outbox: no phone has the message, so none can answer it), nor
        for one that picks the sender itself (a Twilio Messaging Service): its receipts name the number, and the
        receipt book writes the row then (``ReceiptBook``).
        """
        sent = [r for r in batch if r.status is RecipientState.SENT]
        if self._replies is None or not self._receipts or self._picks_sender or not sent:
            return
        now = self._clock()
        self._replies.record(comm.sender, [(r.phone_number, Sent(comm.licensee_id, comm.comm_id, r.index, now,
                                                                  comm.reply_is_allowed)) for r in sent],
                             concurrency=self._follow_up.concurrency)

    def _watch(self, comm: Communication, accepted: Sequence[Recipient]) -> None:
        """Watch rows for the missing-receipt check, one transaction per batch; a provider that cannot be asked
        needs none. Best effort: without its row a recipient no receipt reaches just stays Sent."""
        checks, policy = self._follow_up.checks, self._follow_up.policy
        if checks is None or policy is None or not accepted or not isinstance(self._provider, ReceiptSource):
            return
        now = self._clock()
        watches = [Watch(comm.comm_id, r.index, r.provider_message_id or "", self._provider.name, now,
                         policy.first(now)) for r in accepted]
        try:
            checks.watch(watches)
        except AzureError as error:
            log.warning("comm %s: %d recipient(s) not watched for missing receipts: %s", comm.comm_id.hex,
                        len(watches), describe(error))

    def _settle_receipts(self, comm: Communication) -> int | None:
        """Take a final communication's status on to what the receipts counted in its header say.

        Delivery's record writes the status from its own rows, without the receipts that arrived during the
        run; this reads the header's counts (a point read) and writes the combined status if it differs, on
        the ETag read. A receipt writing meanwhile makes it read again; one after it sees the final header
        and moves the status itself. Not for a provider that sends no receipts. The same query counts the partition's
        webhook marks: returned (None when nothing was read), so the caller knows whether the communication can leave
        the open-work index (``_close``).
        """
        if not self._receipts:
            return None
        marks = None
        for _ in range(SETTLE_TRIES):
            header, marks = self._store.header_and_marks(comm.comm_id)
            if header is None:
                return marks
            status = header_status(header, header.receipts)
            if status is header.status:
                comm.status = status
                return marks
            try:
                self._store.save_status(comm.comm_id, status, header.etag, self._clock())
            except ConcurrentUpdate:
                continue
            comm.status = status
            return marks
        log.warning("comm %s: status not settled with its receipts after %d tries", comm.comm_id.hex, SETTLE_TRIES)
        return None

    def _report(
        self, comm: Communication, recipients: Sequence[Recipient], retry_after: float | None
    ) -> DeliveryReport:
        sent, failed, pending = count_recipients(recipients)
        return DeliveryReport(
            comm_id=comm.comm_id,
            status=comm.status,
            total=len(recipients),
            sent=sent,
            failed=failed,
            pending=pending,
            retry_after_seconds=retry_after,
            last_error=comm.last_error,
            opted_out=sum(recipient.status is RecipientState.OPTED_OUT for recipient in recipients),
            valid_until=comm.valid_until,
        )


def _count_into(comm: Communication, recipients: Sequence[Recipient]) -> tuple[int, int]:
    """Set the header's counts and status as the recipient rows say (a final status taken on by the receipts the
    header counts); nothing sent ends Canceled, Expired or Failed as the rows say (``unsent_status``)."""
    sent, failed, pending = count_recipients(recipients)
    comm.sent_count, comm.failed_count = sent, failed
    unsent = unsent_status(recipient.status for recipient in recipients)
    comm.status = overall_status(aggregate_status(sent, failed, pending, unsent=unsent), sent, comm.receipt_counts)
    return sent, failed


def _outcomes(results: Sequence[SendResult]) -> dict[str, int]:
    """How many of a provider call's results were sent, failed or refused as opted out (a retry is none yet)."""
    counts = {"sent": 0, "failed": 0, "opted_out": 0}
    for result in results:
        if result.outcome is Outcome.ACCEPTED:
            counts["sent"] += 1
        elif result.outcome is Outcome.FAILED:
            counts["opted_out" if result.opted_out else "failed"] += 1
    return counts


def _open(recipients: Iterable[Recipient]) -> bool:
    return any(not recipient.status.is_final for recipient in recipients)


def _longest(current: float | None, candidate: float | None) -> float | None:
    if candidate is None:
        return current
    return candidate if current is None else max(current, candidate)
