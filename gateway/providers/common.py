"""Small helpers the real providers share: reading Retry-After, sending a batch call by call until the
service itself fails, one summary log line per batch (masking for logs is ``gateway.redact``).

Kept free of any SDK import, so importing it costs nothing at cold start.
"""

from __future__ import annotations

import email.utils
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from gateway.providers.base import OutboundSms, Outcome, SendResult

# How a RETRY says whether the provider may have the message. Delivery records the code; for a provider
# whose resends are not safe (Twilio), TIMEOUT is the one outcome where the SMS may already be on its way.
CONNECT_FAILED = "ConnectFailed"  # no connection was made: the provider never saw the request
TIMEOUT = "Timeout"  # the request went out and no answer came in time: the provider may have it
CONNECTION_LOST = "ConnectionLost"  # the connection broke after the request went out: the provider may have it
NOT_ATTEMPTED = "NotAttempted"  # skipped after an earlier message in the batch met a service-wide failure
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
) -> list[SendResult]:
    """One result per message, in the messages' order, from one ``send`` per call (a call: indexes into ``messages``).

    ``send`` answers a result per message of its call, and True when the failure speaks for the whole
    service (429, 503, no connection, a time-out): the rest of the batch is then not attempted now, but
    answered ``Retry`` with ``NotAttempted`` and that failure's Retry-After.
    """
    results: list[SendResult | None] = [None] * len(messages)
    halted_by: SendResult | None = None
    for call in calls:
        batch = [messages[index] for index in call]
        if halted_by is None:
            answers, service_wide = send(batch)
            if service_wide:
                halted_by = answers[0]
        else:
            answers = [_not_attempted(message, halted_by) for message in batch]
        for index, result in zip(call, answers, strict=True):
            results[index] = result
    return [result for result in results if result is not None]


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
