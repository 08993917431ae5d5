"""The queue adapter: a delivery message in, delivery run, the queue told how it went.

Returning deletes the message; raising makes the host show it again after
``visibilityTimeout`` and, after ``maxDequeueCount`` tries, move it to the poison queue.
"""

from __future__ import annotations

import logging

import azure.functions as func

from gateway.delivery import DeliveryInProgress, RetryLater
from gateway.queue import BadQueueMessage, decode_message
from gateway.runtime import get_gateway

log = logging.getLogger("gateway.worker")


def deliver(message: func.QueueMessage) -> None:
    try:
        comm_id = decode_message(message.get_body())
    except BadQueueMessage:
        log.error("dropping queue message %s: not a delivery message", message.id)
        return
    try:
        report = get_gateway().delivery.deliver(comm_id)
    except RetryLater as later:
        log.warning("comm %s: %s (attempt %s)", comm_id.hex, later, getattr(message, "dequeue_count", "?"))
        raise
    except DeliveryInProgress:
        log.info("comm %s is being delivered by another worker; will look again", comm_id.hex)
        raise
    if report is None:
        log.warning("queue message for unknown comm %s dropped", comm_id.hex)
