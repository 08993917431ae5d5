"""Small helpers the real providers share: reading Retry-After, sending a batch's calls (up to a bound at once)
until the service itself fails, one summary log line per batch (masking for logs is ``gateway.redact``).

Kept free of any SDK import, so importing it costs nothing at cold start.
"""

from __future__ import annotations

import email.utils
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from gateway.providers.base import OutboundSms, Outcome, SendResult

# How a RETRY says whether the provider may have the message. Delivery records the code; for a provider
# whose resends are not safe (Twilio), TIMEOUT is the one outcome where the SMS may already be on its way.
CONNECT_FAILED = "ConnectFailed"  # no connection was made: the provider never saw the request
TIMEOUT = "Timeout"  # the request went out and no answer came in time: the provider may have it
CONNECTION_LOST = "ConnectionLost"  # the connection broke after the request went out: the provider may have it
NOT_ATTEMPTED = "NotAttempted"  # skipped after an earlier message in the batch met a service-wide failure
OUT_OF_TIME = "OutOfTime"  # not tried: the batch's claim could expire before an answer came (certainly not sent)
MAYBE_SENT = frozenset({TIMEOUT, CONNECTION_LOST})  # RETRY codes after which a resend may duplicate the SMS


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None when absent or unreadable.

    Reported as the provider said it (never negative); ``delivery.retry_delay`` caps how long the queue waits.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(seconds, 0.0)


def send_in_turn(
    messages: Sequence[OutboundSms],
    calls: Iterable[Sequence[int]],
    send: Callable[[Sequence[OutboundSms]], tuple[list[SendResult], bool]],
    *,
    deadline: float | None = None,
    call_seconds: float = 0.0,
    concurrency: int = 1,
) -> list[SendResult]:
    """One result per message, in the messages' order, from one ``send`` per call (a call: indexes into ``messages``).

    Up to ``concurrency`` calls are in flight at once (threads sharing the provider's pooled session), started
    in the calls' order. ``send`` answers a result per message of its call, and True when the failure speaks
    for the whole service (429, 503, no connection, a time-out): no call starts after that answer, and the
    rest of the batch is answered ``Retry`` with ``NotAttempted`` and that failure's Retry-After (calls
    already in flight then end as they end). A call that could not end (``call_seconds``, its time-outs)
    before ``deadline`` (``time.monotonic()``) is not started: its messages, and the rest, are answered
    ``Retry`` with ``OutOfTime``.
    """
    turn = _Turn(messages, iter(calls), send, deadline, call_seconds)
    workers = max(1, concurrency)
    if workers == 1:
        turn.work()
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="provider-call") as pool:
            for future in [pool.submit(turn.work) for _ in range(workers)]:
                future.result()
    return [result for result in turn.results if result is not None]


class _Turn:
    """The calls of one batch, taken in order by however many workers send them."""

    def __init__(
        self,
        messages: Sequence[OutboundSms],
        calls: Iterator[Sequence[int]],
        send: Callable[[Sequence[OutboundSms]], tuple[list[SendResult], bool]],
        deadline: float | None,
        call_seconds: float,
    ) -> None:
        self._messages, self._calls, self._send = messages, calls, send
        self._deadline, self._call_seconds = deadline, call_seconds
        self._lock = threading.Lock()
        self._halted_by: SendResult | None = None
        self._out_of_time = False
        self.results: list[SendResult | None] = [None] * len(messages)

    def work(self) -> None:
        """Take the next call and send it, or answer it unsent, until no call is left."""
        while True:
            with self._lock:
                call = next(self._calls, None)
                if call is None:
                    return
                batch = [self._messages[index] for index in call]
                halted_by = self._halted_by
                if halted_by is None and self._deadline is not None \
                        and time.monotonic() + self._call_seconds > self._deadline:
                    self._out_of_time = True
                out_of_time = self._out_of_time
            if out_of_time:
                answers = [_out_of_time(message) for message in batch]
            elif halted_by is not None:
                answers = [_not_attempted(message, halted_by) for message in batch]
            else:
                answers, service_wide = self._send(batch)
                if service_wide:
                    with self._lock:
                        self._halted_by = self._halted_by or answers[0]
            for index, result in zip(call, answers, strict=True):
                self.results[index] = result


def _out_of_time(message: OutboundSms) -> SendResult:
    return SendResult(message.recipient_id, Outcome.RETRY, error_code=OUT_OF_TIME,
                      error_message="not sent: the batch's claim would have expired before an answer came")


def _not_attempted(message: OutboundSms, halted_by: SendResult) -> SendResult:
    return SendResult(
        message.recipient_id,
        Outcome.RETRY,
        error_code=NOT_ATTEMPTED,
        error_message=f"not sent: an earlier request in this batch got {halted_by.error_code}",
        retry_after_seconds=halted_by.retry_after_seconds,
    )


def log_summary(log: logging.Logger, provider: str, results: Sequence[SendResult]) -> None:
    """One line per batch: how many the provider accepted, refused and asked us to retry."""
    if not results:
        return
    counts = {outcome: 0 for outcome in Outcome}
    for result in results:
        counts[result.outcome] += 1
    log.info("%s: %d sent: %d accepted, %d failed, %d to retry", provider, len(results), counts[Outcome.ACCEPTED],
             counts[Outcome.FAILED], counts[Outcome.RETRY])
