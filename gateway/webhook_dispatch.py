"""Sending webhook events: one queue message's events POSTed, signed, to their licensee's endpoint (docs/webhooks.md).

For each message: the events still Pending are loaded, the URL is checked again (its host may resolve elsewhere
now), and each event is POSTed with the Standard Webhooks headers, redirects not followed, 10 s to connect and
10 s to answer. A 2xx marks it Delivered. Anything else ends the run for this endpoint: the event that failed
and those after it count a failed attempt each and go back on the queue with a delay, ``base * 2^(attempts-1)``
(``SMS_WEBHOOK_RETRY_BASE_SECONDS``), the last retry 24 hours after the first attempt; one that fails then is
kept Failed with its last error. Nothing sleeps: a delay is the queue message's invisibility.

A licensee whose endpoint keeps failing must not slow anyone else: a run stops at its endpoint's first failure
(at most one time-out per message), and for a short while after (``HOLD_MAX_SECONDS`` at most) this instance puts
that licensee's other messages back on the queue without calling the endpoint.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import requests
from requests.adapters import HTTPAdapter

from gateway.cache import ExpiringCache
from gateway.storage import utcnow
from gateway.webhook_events import Endpoint, EndpointDirectory
from gateway.webhook_outbox import PENDING, AttemptFailed, StoredEvent, WebhookOutbox
from gateway.webhook_queue import MAX_DELAY_SECONDS, WebhookMessage, WebhookQueue
from gateway.webhook_signing import BadSecret, webhook_headers
from gateway.webhook_urls import check_url

log = logging.getLogger("gateway.webhooks")

SEND_TIMEOUT_SECONDS = 10
RETRY_FOR = timedelta(hours=24)
RUN_SECONDS = 120  # no send starts later in a run; the rest go on in a fresh message (host.json: 5 minutes)
HOLD_MAX_SECONDS = 60
HELD_LICENSEES = 10_000


def retry_delay(attempts: int, base_seconds: int) -> int:
    """Seconds before the next try after ``attempts`` failed ones: base, 2 base, 4 base…, at most 7 days."""
    return min(base_seconds * 2 ** min(max(attempts - 1, 0), 32), MAX_DELAY_SECONDS)


def next_attempt(first: datetime, now: datetime, attempts: int, base_seconds: int) -> datetime | None:
    """When to try again after ``attempts`` failed tries, the first at ``first``; None once 24 hours have passed.

    The last retry is at ``first`` + 24 h exactly, so an event is given up after at least a day, never much more.
    """
    give_up_at = first + RETRY_FOR
    if now >= give_up_at:
        return None
    return min(now + timedelta(seconds=retry_delay(attempts, base_seconds)), give_up_at)


class WebhookSender:
    """POSTs one signed body; returns None when the endpoint took it (2xx), otherwise what went wrong (a status
    or an error class, never the response's body)."""

    def __init__(self, connections: int = 10, timeout_seconds: float = SEND_TIMEOUT_SECONDS) -> None:
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy or .netrc from the environment: the URL is the licensee's
        adapter = HTTPAdapter(pool_maxsize=connections, max_retries=0)
        for scheme in ("http://", "https://"):
            self._session.mount(scheme, adapter)
        self._timeout = timeout_seconds

    def post(self, url: str, headers: dict[str, str], body: bytes) -> str | None:
        try:
            response = self._session.post(url, data=body, headers=headers, timeout=self._timeout,
                                          allow_redirects=False, stream=True)
        except requests.Timeout:
            return f"Timeout: no answer within {self._timeout:g} s"
        except requests.RequestException as error:
            return type(error).__name__
        response.close()  # the body is not read: a receiver cannot make us download anything
        if 200 <= response.status_code < 300:
            return None
        if response.is_redirect:
            return f"HTTP {response.status_code}: redirects are not followed"
        return f"HTTP {response.status_code}"


class WebhookDispatcher:
    """Handles the webhook queue's messages (``worker.handle_webhook_message``)."""

    def __init__(self, outbox: WebhookOutbox, endpoints: EndpointDirectory, queue: WebhookQueue,
                 sender: WebhookSender, *, retry_base_seconds: int, allow_private: bool, require_https: bool,
                 clock: Callable[[], datetime] = utcnow, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.outbox = outbox
        self._endpoints = endpoints
        self._queue = queue
        self._sender = sender
        self._base = retry_base_seconds
        self._allow_private = allow_private
        self._require_https = require_https
        self._clock = clock
        self._monotonic = monotonic
        self._held: ExpiringCache[uuid.UUID, datetime] = ExpiringCache(HELD_LICENSEES, HOLD_MAX_SECONDS, monotonic)

    def handle(self, message: WebhookMessage) -> None:
        """Send the message's pending events in order, until the endpoint fails or the run's time is up."""
        licensee_id, started = message.licensee_id, self._monotonic()
        now = self._clock()
        held_until = self._held.get(licensee_id)
        if held_until is not None and held_until > now:
            self._queue.enqueue(licensee_id, message.event_ids,
                                delay_seconds=math.ceil((held_until - now).total_seconds()))
            return
        events = [event for event in self.outbox.find_many(licensee_id, message.event_ids) if event.status == PENDING]
        if not events:
            return
        endpoint = self._endpoints.find(licensee_id)
        if endpoint is None:
            log.warning("licensee %s: %d webhook events failed: no endpoint registered", licensee_id.hex, len(events))
            self.outbox.record_failures([AttemptFailed(event, "NoEndpoint: no webhook is registered", None,
                                                       attempted=False) for event in events], now)
            return
        for position, event in enumerate(events):
            if self._monotonic() - started > RUN_SECONDS:
                self._queue.enqueue(licensee_id, [each.event_id for each in events[position:]])
                return
            now = self._clock()
            error = self._send(endpoint, event, now)
            if error is None:
                self.outbox.mark_delivered(event, now)
                log.info("licensee %s: webhook event %s delivered", licensee_id.hex, event.event_id)
                continue
            self._failed(licensee_id, event, events[position + 1:], error, now)
            return

    def _send(self, endpoint: Endpoint, event: StoredEvent, now: datetime) -> str | None:
        try:
            check_url(endpoint.url, allow_private=self._allow_private, require_https=self._require_https)
        except ValueError as refused:
            return f"RefusedUrl: {refused}"
        body = event.body.encode("utf-8")
        try:
            headers = webhook_headers(endpoint, event.event_id, body, now)
        except BadSecret as bad:
            return f"BadSecret: {bad}"  # a registration's fault: kept and retried like any failure, never raised
        return self._sender.post(endpoint.url, headers, body)

    def _failed(self, licensee_id: uuid.UUID, event: StoredEvent, untried: Sequence[StoredEvent], error: str,
                now: datetime) -> None:
        """One failed attempt for ``event`` and for the events behind it, each re-queued at its own next time."""
        failures = [AttemptFailed(event, error, self._next(event, now))]
        failures += [AttemptFailed(each, f"NotSent: an earlier event to the endpoint failed ({error})",
                                   self._next(each, now)) for each in untried]
        self.outbox.record_failures(failures, now)
        by_delay: dict[int, list[str]] = {}
        for failure in failures:
            if failure.next_attempt_at is not None:
                delay = math.ceil((failure.next_attempt_at - now).total_seconds())
                by_delay.setdefault(delay, []).append(failure.event.event_id)
        for delay, ids in sorted(by_delay.items()):
            self._queue.enqueue(licensee_id, ids, delay_seconds=delay)
        hold = min(min(by_delay, default=HOLD_MAX_SECONDS), HOLD_MAX_SECONDS)
        self._held.put(licensee_id, now + timedelta(seconds=hold))
        given_up = sum(failure.next_attempt_at is None for failure in failures)
        log.warning("licensee %s: webhook event %s not taken (%s); %d events retried, %d failed for good",
                    licensee_id.hex, event.event_id, error, len(failures) - given_up, given_up)

    def _next(self, event: StoredEvent, now: datetime) -> datetime | None:
        return next_attempt(event.first_attempt_at or now, now, event.attempts + 1, self._base)
