"""A batch's provider calls run concurrently up to SMS_PROVIDER_CONCURRENCY; a service-wide failure still halts it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence

from gateway.providers.base import OutboundSms, Outcome, SendResult
from gateway.providers.common import NOT_ATTEMPTED, send_in_turn


def sms(count: int) -> list[OutboundSms]:
    comm = uuid.uuid4()
    return [OutboundSms(comm, uuid.uuid4(), f"+1415555{index:04d}", "+14155550000", "hi") for index in range(count)]


class CountingProvider:
    """Answers each call after ``seconds``, counting the calls in flight at once."""

    def __init__(self, seconds: float = 0.05, refuse_call: int | None = None) -> None:
        self._seconds, self._refuse_call = seconds, refuse_call
        self._lock = threading.Lock()
        self.in_flight = self.most_in_flight = self.calls = 0

    def send(self, batch: Sequence[OutboundSms]) -> tuple[list[SendResult], bool]:
        with self._lock:
            self.calls += 1
            number = self.calls
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self._seconds)
        with self._lock:
            self.in_flight -= 1
        if number == self._refuse_call:
            refused = [SendResult(m.recipient_id, Outcome.RETRY, error_code="20429", retry_after_seconds=5)
                       for m in batch]
            return refused, True
        return [SendResult(m.recipient_id, Outcome.ACCEPTED, provider_message_id=f"SM{number}") for m in batch], False


def test_calls_run_concurrently_up_to_the_bound_and_answer_in_the_messages_order() -> None:
    provider, messages = CountingProvider(), sms(40)

    started = time.monotonic()
    results = send_in_turn(messages, ([index] for index in range(40)), provider.send, concurrency=8)
    elapsed = time.monotonic() - started

    assert provider.most_in_flight == 8
    assert provider.calls == 40
    assert [result.recipient_id for result in results] == [message.recipient_id for message in messages]
    assert all(result.outcome is Outcome.ACCEPTED for result in results)
    assert elapsed < 40 * 0.05 / 2  # five rounds of 8, not forty calls in turn


def test_a_bound_of_one_sends_in_turn() -> None:
    provider = CountingProvider(seconds=0.01)
    send_in_turn(sms(5), ([index] for index in range(5)), provider.send, concurrency=1)
    assert provider.most_in_flight == 1


def test_no_call_starts_after_a_service_wide_failure() -> None:
    provider, messages = CountingProvider(refuse_call=3), sms(30)

    results = send_in_turn(messages, ([index] for index in range(30)), provider.send, concurrency=4)

    # The calls in flight when the 429 came (at most the bound) end as they end; none starts after it.
    assert provider.calls <= 3 + 4
    not_attempted = [result for result in results if result.error_code == NOT_ATTEMPTED]
    assert len(not_attempted) == 30 - provider.calls
    assert all(result.retry_after_seconds == 5 for result in not_attempted)
    assert sum(result.outcome is Outcome.ACCEPTED for result in results) == provider.calls - 1


def test_no_call_starts_that_could_outlast_the_deadline_under_concurrency() -> None:
    provider = CountingProvider(seconds=0.1)

    results = send_in_turn(sms(50), ([index] for index in range(50)), provider.send, concurrency=5,
                           deadline=time.monotonic() + 0.35, call_seconds=0.1)

    sent = sum(result.outcome is Outcome.ACCEPTED for result in results)
    assert 5 <= sent <= 15 and provider.calls == sent
    assert all(result.error_code == "OutOfTime" for result in results if result.outcome is not Outcome.ACCEPTED)
