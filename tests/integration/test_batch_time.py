"""A batch never outlives its claim, and a run never outlives the host's patience (docs/delivery.md).

A provider that takes a while per call (like Twilio, one request per recipient) starts no call that
could still be running when the batch's claim expires; the recipients it had no time for are sent
under a fresh claim in the same run. A run that used ``run_seconds`` hands the rest to a fresh queue
message at once, without spending an attempt of the retry budget.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Sequence

import pytest
from azure.functions.queue import QueueMessage as TriggerMessage

from gateway import worker
from gateway.delivery import Delivery, MoreToSend
from gateway.providers.base import OutboundSms, Outcome, SendResult
from gateway.providers.common import send_in_turn
from gateway.queue import decode_message, encode_message
from gateway.runtime import use_gateway
from gateway.storage import CommStatus, RecipientState
from tests.integration.test_delivery import stored


class SlowProvider:
    """One call per message, each answered after ``answer_seconds``; a call may take up to ``call_seconds``."""

    name = "slow"
    max_batch_size = 10
    resend_is_safe = False
    resend_window_seconds = 0.0

    def __init__(self, *, answer_seconds: float, call_seconds: float) -> None:
        self.answer_seconds = answer_seconds
        self.call_seconds = call_seconds
        self.calls: list[tuple[uuid.UUID, float, float]] = []  # (recipient, started, the batch's deadline)
        self._deadline = 0.0

    def send(self, messages: Sequence[OutboundSms], deadline: float | None = None) -> list[SendResult]:
        assert deadline is not None, "delivery always gives the batch's claim as a deadline"
        self._deadline = deadline
        return send_in_turn(messages, ([index] for index in range(len(messages))), self._call, deadline=deadline,
                            call_seconds=self.call_seconds)

    def _call(self, batch: Sequence[OutboundSms]) -> tuple[list[SendResult], bool]:
        [message] = batch
        self.calls.append((message.recipient_id, time.monotonic(), self._deadline))
        time.sleep(self.answer_seconds)
        return [SendResult(message.recipient_id, Outcome.ACCEPTED, provider_message_id=f"s-{len(self.calls)}")], False


def test_a_batch_sends_only_inside_its_claim_and_the_run_claims_the_rest_afresh(make_gateway) -> None:
    store = make_gateway().store
    comm = stored(store, 12)
    provider = SlowProvider(answer_seconds=0.1, call_seconds=0.25)
    delivery = Delivery(store, provider, claim_timeout_seconds=1)

    report = delivery.deliver(comm.comm_id)  # one run: no RetryLater, nothing left for the queue

    assert (report.status, report.sent) == (CommStatus.SENT, 12)
    assert max(Counter(recipient for recipient, _, _ in provider.calls).values()) == 1, "a recipient was sent twice"
    assert all(started + provider.call_seconds <= deadline for _, started, deadline in provider.calls)
    deadlines = sorted({deadline for _, _, deadline in provider.calls})
    assert len(deadlines) == 2  # the first ten did not fit one 1 s claim: the rest went under a second
    attempts = Counter(recipient.attempts for recipient in store.load(comm.comm_id).stored_recipients)
    assert attempts[1] and attempts[2]  # some were claimed twice: once cut short, once sent
    assert {r.status for r in store.load(comm.comm_id).stored_recipients} == {RecipientState.SENT}


def test_a_run_that_used_its_time_hands_the_rest_on_without_spending_an_attempt(make_gateway) -> None:
    gateway = make_gateway()
    comm = stored(gateway.store, 25)
    provider = SlowProvider(answer_seconds=0.02, call_seconds=0.1)
    gateway.delivery = Delivery(gateway.store, provider, claim_timeout_seconds=60, run_seconds=0.1)

    with pytest.raises(MoreToSend) as more:
        gateway.delivery.deliver(comm.comm_id)
    assert more.value.report.sent == 10 and more.value.report.pending == 15  # one batch, then time was up

    use_gateway(gateway)
    try:
        # The third run of the unit holding the 15 left (two before this message); it too uses its time after
        # one batch. (A whole-communication message would fan out into batch-sized units instead.)
        rest = range(10, 25)
        message = TriggerMessage(id="m", body=encode_message(comm.comm_id, attempt=2, unit=rest).encode(),
                                 dequeue_count=1)
        worker.handle_delivery_message(message)
    finally:
        use_gateway(None)

    [queued] = gateway.clients.queue(gateway.settings.queue_name).peek_messages()  # visible at once
    envelope = decode_message(queued.content)
    assert (envelope.comm_id, envelope.attempt, envelope.unit) == (comm.comm_id, 2, rest)  # the third again
    assert gateway.store.load_header(comm.comm_id).next_run_at is None  # no delay to wait for
