"""The queue and timer adapters: delivery messages in, delivery run, the queue told how it went.

Transient provider failures are re-queued here with a delay (``delivery.retry_delay``: the
provider's Retry-After or an exponential back-off, capped at an hour), never slept on; after
``SMS_MAX_DELIVERY_ATTEMPTS`` runs the message goes to the poison queue, whose own function ends
the communication as Failed. A run that used its time hands the rest to a fresh message at once.
Anything unexpected is raised, so the host's visibilityTimeout / maxDequeueCount apply.

The sweep (``SMS_SWEEP_SCHEDULE``, every minute) finds what the queue lost; docs/delivery.md works out
how long a crash can leave a message waiting. The missing-receipt check (``SMS_RECEIPT_CHECK_SCHEDULE``, every
5 minutes) asks the provider about messages no receipt reached (``gateway/receipt_checks.py``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import azure.functions as func
from azure.core.exceptions import AzureError

from gateway import telemetry
from gateway.delivery import (
    DeliveryInProgress,
    MoreToSend,
    NotDueYet,
    RetryLater,
    hand_to_queue,
    retry_delay,
    until_expiry,
)
from gateway.open_work import OpenWork
from gateway.queue import BadQueueMessage, DeliveryMessage, decode_message
from gateway.receipt_checks import CheckReport
from gateway.redact import brief, describe
from gateway.retention import RetentionReport
from gateway.runtime import get_gateway
from gateway.schedule import ScheduleIndex
from gateway.storage import CommStatus, EventMark, utcnow
from gateway.webhook_publish import Emitter
from gateway.webhook_queue import WebhookMessage, decode_webhook_message

log = logging.getLogger("gateway.worker")

SWEEP_GIVE_UP_AFTER = 3  # re-queues by the sweep before the communication is ended as Failed


def _decode(message: func.QueueMessage) -> DeliveryMessage | None:
    try:
        return decode_message(message.get_body())
    except BadQueueMessage:
        log.error("dropping queue message %s: not a delivery message", message.id)
        return None


def handle_delivery_message(message: func.QueueMessage) -> None:
    """One delivery run for the CommId (or one unit of it) in a queue message; a run left pending is re-queued
    with a delay. A whole communication larger than one batch is fanned out: a message per unit, each with its
    own retry budget."""
    envelope = _decode(message)
    if envelope is None:
        return
    attempt = envelope.attempt + max(1, getattr(message, "dequeue_count", None) or 1)
    with telemetry.delivering(envelope.comm_id, envelope.traceparent, attempt=attempt, unit=envelope.unit,
                              queue_age_seconds=_age(message)):
        _deliver(envelope, attempt)


def _age(message: func.QueueMessage) -> float | None:
    """Seconds since the message was written (the queue's insertion time, UTC), when the trigger says."""
    inserted = getattr(message, "insertion_time", None)
    if not isinstance(inserted, datetime):
        return None
    return (utcnow() - (inserted if inserted.tzinfo else inserted.replace(tzinfo=UTC))).total_seconds()


def _deliver(envelope: DeliveryMessage, attempt: int) -> None:
    gateway = get_gateway()
    comm_id, unit = envelope.comm_id, envelope.unit

    def fan_out(units: Sequence[range], delays: Sequence[int]) -> None:
        for each, delay in zip(units, delays, strict=True):
            gateway.queue.enqueue(comm_id, unit=each, delay_seconds=delay)

    try:
        report = gateway.delivery.deliver(comm_id, unit, fan_out=fan_out)
    except NotDueYet as early:
        # A scheduled send's message came before its SendAt (the queue's 7-day cap, a replay, the sweep): it waits
        # again for the rest, no attempt spent.
        log.info("comm %s: %s; back in %d s", comm_id.hex, early, early.wait_seconds)
        hand_to_queue(gateway.queue, gateway.store, comm_id, delay_seconds=int(early.wait_seconds),
                      attempt=attempt - 1, unit=unit)
        return
    except MoreToSend as more:
        log.info("comm %s%s: %s; going on in a fresh message", comm_id.hex, _named(unit), more)
        # Not a failed run: no attempt spent. A paced message waits for its sender's window (capped as any retry).
        delay = until_expiry(retry_delay(0, more.wait_seconds, base_seconds=0), more.report.valid_until, utcnow())
        hand_to_queue(gateway.queue, gateway.store, comm_id, delay_seconds=delay, attempt=attempt - 1, unit=unit)
        return
    except RetryLater as later:
        reason, wait, base = str(later), later.report.retry_after_seconds, gateway.settings.retry_base_seconds
        valid_until = later.report.valid_until
    except DeliveryInProgress as busy:
        reason, wait, base = str(busy), busy.retry_in_seconds, 0  # nothing failed: no back-off, just the wait
        valid_until = None
    else:
        if report is None:
            log.warning("queue message for unknown comm %s dropped", comm_id.hex)
        return
    if attempt >= gateway.settings.max_delivery_attempts:
        log.warning("comm %s%s: giving up after %d attempts: %s", comm_id.hex, _named(unit), attempt, brief(reason))
        gateway.poison_queue.enqueue(comm_id, attempt=attempt, unit=unit)
        return
    delay = until_expiry(retry_delay(attempt, wait, base_seconds=base), valid_until, utcnow())
    log.info("comm %s%s: %s; attempt %d in %d s", comm_id.hex, _named(unit), brief(reason), attempt + 1, delay)
    hand_to_queue(gateway.queue, gateway.store, comm_id, delay_seconds=delay, attempt=attempt, unit=unit)


def _named(unit: range | None) -> str:
    return "" if unit is None else f" unit {unit.start}..{unit.stop - 1}"


def handle_poison_message(message: func.QueueMessage) -> None:
    """A poison message: end its communication (or its unit), every recipient still open marked Failed."""
    envelope = _decode(message)
    if envelope is None:
        return
    gateway = get_gateway()
    attempts = envelope.attempt or gateway.settings.max_delivery_attempts
    with telemetry.abandoning(envelope.comm_id, envelope.traceparent):
        gateway.delivery.give_up(envelope.comm_id, f"Delivery abandoned after {attempts} attempts", envelope.unit)


@dataclass
class SweepReport:
    """What one sweep did."""

    queued: int = 0  # communications queued again (their message was lost, or their worker died)
    given_up: int = 0  # communications ended Failed after ``SWEEP_GIVE_UP_AFTER`` sweeps
    recovered: int = 0  # webhook marks whose events it published
    dropped: int = 0  # open-work rows of work already done (or never stored)


def sweep(now: datetime | None = None) -> int:
    """One sweep (``run_sweep``); returns how many communications it queued."""
    return run_sweep(now).queued


def run_sweep(now: datetime | None = None) -> SweepReport:
    """Queue every accepted communication that is not final and has not moved for a while, and publish the webhook
    events of changes whose publish failed or never ran.

    Catches what the queue lost: a crash between the table write and the enqueue, an
    immediate send interrupted mid-way, a worker that died holding a claim (its message stays
    hidden for the host's 10-minute lease), a poison message that could not be processed.
    Quiet for ``SMS_SWEEP_AFTER_SECONDS`` means unchanged and past the run a delayed message
    was due to bring. When the queue is behind (its oldest waiting message is older than
    that), only communications last changed before that message count: the others may have
    a message waiting behind it, and queueing them again would only lengthen the queue.
    A scheduled send still Scheduled a quiet time after its SendAt lost its message: the schedule index lists it
    (``_sweep_schedule``).
    It reads only open work: the open-work index's rows due now (``gateway/open_work.py``), each a communication
    not yet final or a listed webhook mark, and per row the communication's header and marks (one query). So it
    costs storage requests in proportion to the open work, never to the communications table (docs/delivery.md).
    """
    gateway = get_gateway()
    now = now or utcnow()
    report = SweepReport()
    quiet = timedelta(seconds=gateway.settings.sweep_after_seconds)
    quiet_since = now - quiet
    cutoff = quiet_since
    backlog = gateway.queue.oldest_waiting()
    telemetry.record(telemetry.QUEUE_WAITING, max(0.0, (now - backlog).total_seconds()) if backlog else 0.0)
    if backlog is not None and backlog < cutoff:
        log.info("sweep: the queue is behind (oldest message from %s)", backlog.isoformat())
        cutoff = backlog
    if gateway.schedule is not None:
        report.queued += _sweep_schedule(gateway.schedule, now, quiet_since)
    open_work = gateway.store.open_work
    if open_work is None:
        return report
    emitter = Emitter(gateway.events, gateway.store) if gateway.events is not None else None
    for item in open_work.due(now):
        try:
            if item.mark is not None:
                _recover_listed(open_work, emitter, item.mark, report)
            else:
                _look_at(open_work, emitter, item.comm_id, now, quiet_since, cutoff, report)
        except (AzureError, DeliveryInProgress) as error:  # left for the next sweep; the other rows go on
            log.warning("sweep: comm %s left for the next sweep: %s", item.comm_id.hex, describe(error))
    return report


def _recover_listed(open_work: OpenWork, emitter: Emitter | None, mark: EventMark, report: SweepReport) -> None:
    """A mark listed in the index (a receipt's, a reply's) whose publish failed or never ran: publish its events
    (deleting the row); without webhooks in this process, drop it."""
    if emitter is None:
        open_work.close_mark(mark)
        report.dropped += 1
        return
    report.recovered += emitter.recover(mark.comm_id, [mark])


def _look_at(open_work: OpenWork, emitter: Emitter | None, comm_id: uuid.UUID, now: datetime,
             quiet_since: datetime, cutoff: datetime, report: SweepReport) -> None:
    """One communication's open-work row, due now: recover its quiet marks; drop the row of one final (or never
    stored) once no mark is left; queue one lost; else move the row to when it could next be lost."""
    gateway = get_gateway()
    comm, marks = gateway.store.open_view(comm_id)
    quiet_marks = [mark for mark in marks if mark.changed_at < quiet_since]
    left = 0
    if emitter is not None and marks:
        recovered = emitter.recover(comm_id, quiet_marks) if quiet_marks else 0
        report.recovered += recovered
        left = len(marks) - recovered
    if comm is None or comm.status.is_final:
        if left:
            open_work.defer(comm_id, now + open_work.quiet)  # a mark still being published, or one that failed
        else:
            open_work.close(comm_id)
            report.dropped += 1
        return
    if comm.status is CommStatus.SCHEDULED:  # the schedule index watches it until its SendAt
        open_work.defer(comm_id, max(now, comm.send_at or now) + open_work.quiet)
        return
    if comm.next_run_at is not None and comm.next_run_at > quiet_since:
        open_work.defer(comm_id, comm.next_run_at + open_work.quiet)  # a delayed message brings it back
        return
    if comm.updated_at >= cutoff:
        if comm.updated_at + open_work.quiet > now:
            open_work.defer(comm_id, comm.updated_at + open_work.quiet)
        return  # else: changed after the queue's oldest message, which may bring it; looked at again next sweep
    if comm.sweeps >= SWEEP_GIVE_UP_AFTER:
        gateway.delivery.give_up(comm_id, f"Delivery did not finish after {comm.sweeps} sweeps")
        report.given_up += 1
        return
    log.warning("sweep queues comm %s (status %s, last change %s)", comm_id.hex, comm.status,
                comm.updated_at.isoformat())
    gateway.queue.enqueue(comm_id)
    gateway.store.mark_swept(comm, now)
    open_work.defer(comm_id, now + open_work.quiet)
    report.queued += 1


def _sweep_schedule(schedule: ScheduleIndex, now: datetime, quiet_since: datetime) -> int:
    """Queue the scheduled sends still Scheduled ``quiet_since`` after their SendAt (their message was lost), and
    drop the index rows of communications gone or no longer Scheduled. One range query, and a point read per row
    found (``ScheduleIndex.due``); returns how many it queued."""
    gateway = get_gateway()
    queued = 0
    for send in schedule.due(before=quiet_since):
        comm = gateway.store.load_header(send.comm_id)
        if comm is None or comm.status is not CommStatus.SCHEDULED:
            schedule.remove(send)
            continue
        if comm.next_run_at is not None and comm.next_run_at > quiet_since:
            continue  # queued again lately (by this sweep or a run that came early): not lost yet
        log.warning("sweep queues scheduled comm %s (due %s)", comm.comm_id.hex, send.due.isoformat())
        gateway.queue.enqueue(comm.comm_id)
        gateway.store.expect_run(comm.comm_id, now + (now - quiet_since))  # the next sweeps leave it to this message
        queued += 1
    return queued


def _decode_webhook(message: func.QueueMessage) -> WebhookMessage | None:
    try:
        return decode_webhook_message(message.get_body())
    except BadQueueMessage:
        log.error("dropping queue message %s: not a webhook message", message.id)
        return None


def handle_webhook_message(message: func.QueueMessage) -> None:
    """Send one message's webhook events (``gateway/webhook_dispatch.py``); a storage failure raises, so the host
    tries the message again and, after maxDequeueCount tries, moves it to the poison queue."""
    envelope = _decode_webhook(message)
    if envelope is not None:
        get_gateway().webhook_dispatcher.handle(envelope)


def handle_webhook_poison_message(message: func.QueueMessage) -> None:
    """A webhook message that could not be processed: its events still pending are kept as Failed, to be listed
    (``GET /api/webhook/events?status=failed``) and sent again by the licensee."""
    envelope = _decode_webhook(message)
    if envelope is None:
        return
    abandoned = get_gateway().webhook_dispatcher.outbox.abandon(
        envelope.licensee_id, envelope.event_ids, "Abandoned: the queue message failed repeatedly")
    log.warning("licensee %s: %d webhook events abandoned", envelope.licensee_id.hex, abandoned)


def check_receipts() -> CheckReport:
    """One bounded pass of the missing-receipt check: ask the provider about messages still waiting for one."""
    return get_gateway().receipt_checker.run()


def delete_expired(now: datetime | None = None) -> RetentionReport | None:
    """One bounded run of retention (``gateway/retention.py``): communications older than ``SMS_RETENTION_DAYS``."""
    retention = get_gateway().retention
    return retention.run(now or utcnow()) if retention is not None else None
