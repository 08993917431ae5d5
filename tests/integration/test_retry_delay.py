"""A retry waits the same however it reaches the queue: one back-off, one cap (docs/delivery.md, guarantee 2).

The worker re-queues a run that left recipients pending; an immediate send hands the same to the queue
when its own run did. Both go through ``delivery.retry_delay``, against a real Azurite queue.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import azure.functions as func
import pytest
from azure.storage.queue import QueueClient

from gateway import worker
from gateway.auth import Principal
from gateway.delivery import MAX_RETRY_DELAY_SECONDS, Delivery, retry_delay
from gateway.models import SMSSend
from gateway.providers.base import OutboundSms, Outcome, SendResult
from gateway.queue import DeliveryQueue, encode_message
from gateway.runtime import Gateway, use_gateway
from gateway.service import SendService
from gateway.storage import utcnow
from tests.samples import send_body

SIX_HOURS = 6 * 3600.0


class RecordingQueue(DeliveryQueue):
    """The real queue, remembering the delay and attempt of each message it was given."""

    def __init__(self, client: QueueClient) -> None:
        super().__init__(client)
        self.enqueued: list[tuple[int, int]] = []

    def enqueue(self, comm_id: uuid.UUID, *, delay_seconds: int = 0, attempt: int = 0,
                unit: range | None = None) -> None:
        super().enqueue(comm_id, delay_seconds=delay_seconds, attempt=attempt, unit=unit)
        self.enqueued.append((delay_seconds, attempt))


class BusyProvider:
    """Answers Retry for every message, with the given Retry-After (None: the provider gave none)."""

    name = "busy"
    max_batch_size = 10
    resend_is_safe = True
    resend_window_seconds = None

    def __init__(self, retry_after: float | None) -> None:
        self.retry_after = retry_after

    def send(self, messages: Sequence[OutboundSms], deadline: float | None = None) -> list[SendResult]:
        return [
            SendResult(message.recipient_id, Outcome.RETRY, error_code="429", error_message="slow down",
                       retry_after_seconds=self.retry_after)
            for message in messages
        ]


def busy_gateway(make_gateway, retry_after: float | None) -> Gateway:
    gateway = make_gateway(SMS_RETRY_BASE_SECONDS="30")
    gateway.queue = RecordingQueue(gateway.clients.queue(gateway.settings.queue_name))
    gateway.delivery = Delivery(gateway.store, BusyProvider(retry_after),
                                claim_timeout_seconds=gateway.settings.claim_timeout_seconds)
    gateway.service = SendService(gateway.settings, gateway.store, gateway.queue, gateway.delivery)
    return gateway


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(SIX_HOURS, 3600), (0.0, 30), (None, 30), (7.0, 30), (95.5, 96)],
    ids=["six-hours", "zero", "none", "shorter-than-back-off", "longer-than-back-off"],
)
def test_the_worker_and_an_immediate_send_queue_a_first_retry_alike(make_gateway, retry_after, expected) -> None:
    gateway = busy_gateway(make_gateway, retry_after)
    principal = Principal("k", "tests", uuid.uuid4())

    first = gateway.service.send(principal, SMSSend.model_validate(send_body()), immediate=True)
    [immediate] = gateway.queue.enqueued

    queued = gateway.service.send(principal, SMSSend.model_validate(send_body()), immediate=False)
    use_gateway(gateway)
    try:
        worker.handle_delivery_message(func.QueueMessage(id="m", body=encode_message(queued.CommId).encode()))
    finally:
        use_gateway(None)
    by_worker = gateway.queue.enqueued[-1]

    # The run that just ended was the first either way; the queue's next run is the second.
    assert immediate == by_worker == (expected, 1)
    # Each row says when that run comes, so the sweep does not take the communication for lost before then.
    for comm_id in (first.CommId, queued.CommId):
        due_in = (gateway.store.load_header(comm_id).next_run_at - utcnow()).total_seconds()
        assert expected - 10 < due_in <= expected


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [
        (1, None, 30), (2, None, 60), (3, 45.0, 120), (3, 200.0, 200), (3, 200.2, 201),
        (1, 0.0, 30), (1, SIX_HOURS, 3600), (7, None, 1920), (8, None, 3600), (40, None, 3600),
    ],
)
def test_retry_delay_backs_off_lets_a_longer_retry_after_win_and_caps_at_an_hour(attempt, retry_after,
                                                                                 expected) -> None:
    assert retry_delay(attempt, retry_after, base_seconds=30) == expected
    assert MAX_RETRY_DELAY_SECONDS == 3600


def test_with_no_back_off_a_retry_waits_only_as_long_as_asked() -> None:
    assert retry_delay(1, None, base_seconds=0) == 0
    assert retry_delay(1, 0.0, base_seconds=0) == 0
    assert retry_delay(3, 5.0, base_seconds=0) == 5
