"""The queue and timer adapters: delivery messages in, delivery run, the queue told how it went.

Transient provider failures are re-queued here with a delay (``delivery.retry_delay``: the
provider's Retry-After or an exponential back-off, capped at an hour), never slept on; after
``SMS_MAX_DELIVERY_ATTEMPTS`` runs the message goes to the poison queue, whose own function ends
the communication as Failed.
Anything unexpected is raised, so the host's visibilityTimeout / maxDequeueCount apply.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import azure.functions as func

from gateway.delivery import DeliveryInProgress, RetryLater, retry_delay
from gateway.queue import BadQueueMessage, DeliveryMessage, decode_message
from gateway.redact import brief
from gateway.runtime import get_gateway
from gateway.storage import utcnow

log = logging.getLogger("gateway.worker")

SWEEP_SCHEDULE = "0 */5 * * * *"  # NCRONTAB: every five minutes
SWEEP_GIVE_UP_AFTER = 3  # re-queues by the sweep before the communication is ended as Failed
SWEEP_LOOKBACK = timedelta(days=2)


def _decode(message: func.QueueMessage) -> DeliveryMessage | None:
    try:
        return decode_message(message.get_body())
    except BadQueueMessage:
        log.error("dropping queue message %s: not a delivery message", message.id)
        return None


def handle_delivery_message(message: func.QueueMessage) -> None:
    """One delivery run for the CommId in a queue message; a run left pending is re-queued with a delay."""
    envelope = _decode(message)
    if envelope is None:
        return
    gateway = get_gateway()
    attempt = envelope.attempt + max(1, getattr(message, "dequeue_count", None) or 1)
    try:
        report = gateway.delivery.deliver(envelope.comm_id)
    except RetryLater as later:
        reason, wait = str(later), later.report.retry_after_seconds
    except DeliveryInProgress as busy:
        reason, wait = str(busy), busy.retry_in_seconds
    else:
        if report is None:
            log.warning("queue message for unknown comm %s dropped", envelope.comm_id.hex)
        return
    if attempt >= gateway.settings.max_delivery_attempts:
        log.warning("comm %s: giving up after %d attempts: %s", envelope.comm_id.hex, attempt, brief(reason))
        gateway.poison_queue.enqueue(envelope.comm_id, attempt=attempt)
        return
    delay = retry_delay(attempt, wait, base_seconds=gateway.settings.retry_base_seconds)
    log.info("comm %s: %s; attempt %d in %d s", envelope.comm_id.hex, brief(reason), attempt + 1, delay)
    gateway.queue.enqueue(envelope.comm_id, delay_seconds=delay, attempt=attempt)


def handle_poison_message(message: func.QueueMessage) -> None:
    """A poison message: end its communication, every recipient still open marked Failed."""
    envelope = _decode(message)
    if envelope is None:
        return
    gateway = get_gateway()
    attempts = envelope.attempt or gateway.settings.max_delivery_attempts
    gateway.delivery.give_up(envelope.comm_id, f"Delivery abandoned after {attempts} attempts")


def sweep(now: datetime | None = None) -> int:
    """Queue every accepted communication that is not final and has not moved for a while.

    Catches what the queue lost: a crash between the table write and the enqueue, an
    immediate send interrupted mid-way, a poison message that could not be processed.
    Returns how many communications it queued.
    """
    gateway = get_gateway()
    now = now or utcnow()
    queued = 0
    cutoff = now - timedelta(seconds=gateway.settings.sweep_after_seconds)
    for comm in gateway.store.stale(updated_before=cutoff, created_after=now - SWEEP_LOOKBACK):
        if comm.sweeps >= SWEEP_GIVE_UP_AFTER:
            gateway.delivery.give_up(comm.comm_id, f"Delivery did not finish after {comm.sweeps} sweeps")
            continue
        gateway.queue.enqueue(comm.comm_id)
        gateway.store.mark_swept(comm, now)
        queued += 1
        log.warning("sweep queued comm %s (status %s, last change %s)", comm.comm_id.hex, comm.status,
                    comm.updated_at.isoformat())
    return queued
