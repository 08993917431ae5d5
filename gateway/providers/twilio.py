"""Twilio Programmable Messaging, spoken directly over its REST API with ``requests``.

One ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` per recipient (Twilio has no batch
send), through one pooled ``requests.Session``. Twilio has no idempotency key, so a request whose
answer was lost may already have produced an SMS: ``resend_is_safe`` is False, and a RETRY's
``error_code`` says whether Twilio may have the message (``Timeout``, ``ConnectionLost``) or
certainly does not (``ConnectFailed``, ``NotAttempted``, or an HTTP 429/5xx answer).

When delivery does not know whether an earlier attempt reached Twilio, ``find_sent`` asks Twilio's
ListMessage (``GET .../Messages.json``, filtered by To, From and the sent date) for a Message with the
same body created since that attempt, so the recipient can be recorded as sent instead of sent twice.

With ``SMS_PUBLIC_BASE_URL`` set (and the Auth Token that checks what Twilio signs), every create names the
gateway's status-callback route for its recipient (``twilio_callbacks``); ``look_up`` asks Twilio for a message's
current status (``GET .../Messages/{sid}.json``) when no callback came.
"""

from __future__ import annotations

import email.utils
import logging
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from gateway.providers import twilio_callbacks
from gateway.providers.base import OutboundSms, Outcome, ReconcilingProvider, SendResult
from gateway.providers.common import (
    CONNECT_FAILED,
    CONNECTION_LOST,
    TIMEOUT,
    log_summary,
    parse_retry_after,
    send_in_turn,
)
from gateway.providers.twilio_settings import TwilioSettings
from gateway.receipts import Receipt
from gateway.redact import brief, mask_phone

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
# Answers that speak for the whole service, not the one message: the rest of the batch is not tried now.
SERVICE_WIDE_STATUSES = frozenset({429, 503})
# 21611: the sender's queue at Twilio is full (it holds 10 hours of the sender's rate). Not the message's fault:
# retried once the queue has drained for a while, the rest of the batch halted, the sender paced (docs/providers.md).
QUEUE_FULL = "21611"
UNSUBSCRIBED = "21610"  # the recipient texted STOP to this sender: Twilio refuses every message until START
QUEUE_FULL_RETRY_SECONDS = 600.0
DEFAULT_CONCURRENCY = 10  # requests in flight per batch when SMS_PROVIDER_CONCURRENCY is unset; the pool matches
# Reconciliation: a Message counts as an earlier attempt's when Twilio created it no earlier than this before
# the recipient's first attempt (clocks differ). More pages than this for one recipient and sender: cannot tell.
CLOCK_SKEW = timedelta(minutes=2)
LIST_PAGE_SIZE = 50
LIST_MAX_PAGES = 4
MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")  # a Message's sid; anything else is never put in a URL


class _CannotTell(Exception):
    """Twilio's list could not be read, so which messages it has is unknown."""


class TwilioProvider(ReconcilingProvider):
    """Sends each OutboundSms as one Twilio Message; never raises for Twilio's or the network's failures.

    Declared a ``ReconcilingProvider``: ``find_sent`` says which messages Twilio already has.
    """

    name = "twilio"
    max_batch_size = 100  # a batch is a loop of single requests, cut short when its claim runs out (``deadline``)
    resend_is_safe = False  # no idempotency key: a resend after a lost answer can reach the phone twice
    resend_window_seconds: float | None = 0.0

    def __init__(self, settings: TwilioSettings, *, session: requests.Session | None = None,
                 concurrency: int = 1, public_base_url: str | None = None) -> None:
        self._settings = settings
        self._url = f"{settings.base_url}/{API_VERSION}/Accounts/{settings.account_sid}/Messages.json"
        # Callbacks are asked for only when they can be checked: Twilio signs them with the Auth Token.
        self._callback_base = public_base_url if settings.auth_token else None
        # Every create then names the gateway's own URL with CommId and Index, and Twilio calls that URL rather than
        # a Messaging Service's: delivery needs no message-id index to find what a callback is about.
        self.receipts_name_the_recipient = bool(self._callback_base) and not settings.status_callback_url
        # A Messaging Service picks the From from its pool after the create; the status callbacks name it.
        self.picks_sender = bool(settings.messaging_service_sid)
        self._concurrency = concurrency
        self._session = session if session is not None else _new_session(settings, concurrency)

    def send(self, messages: Sequence[OutboundSms], deadline: float | None = None) -> list[SendResult]:
        calls = ([index] for index in range(len(messages)))
        results = send_in_turn(messages, calls, self._send_call, deadline=deadline,
                               call_seconds=self._settings.call_seconds, concurrency=self._concurrency)
        log_summary(log, "twilio", results)
        return results

    def _send_call(self, batch: Sequence[OutboundSms]) -> tuple[list[SendResult], bool]:
        """Twilio has no batch send: each call is one message."""
        [message] = batch
        result, service_wide = self._send_one(message)
        return [result], service_wide

    def find_sent(self, messages: Sequence[OutboundSms]) -> dict[uuid.UUID, str] | None:
        """Twilio's sid for each message an earlier attempt already created; None when Twilio cannot say.

        A Message matches when its to, its sender (the From, or the Messaging Service when one picks
        the sender) and its body are the message's, and Twilio created it no earlier than
        ``CLOCK_SKEW`` before the recipient's first attempt. Each Twilio Message is matched to one
        message at most, the oldest first, so a number that appears twice in a batch is not matched
        twice to one SMS. Never raises: any failure or unreadable answer is None.
        """
        attempts = [(_utc(m.first_attempt_at), m) for m in messages if m.first_attempt_at is not None]
        if len(attempts) < len(messages):
            log.warning("twilio: cannot reconcile a message without its first attempt time")
            return None
        found: dict[uuid.UUID, str] = {}
        taken: set[str] = set()
        lists: dict[tuple[str, str, date], list[tuple[datetime, str, str | None]]] = {}
        try:
            for first_attempt, message in sorted(attempts, key=lambda pair: pair[0]):
                since = first_attempt - CLOCK_SKEW
                # Asked from the day before the first attempt's: whole GMT days, and the skew may cross midnight.
                key = (message.to, message.sender, first_attempt.date() - timedelta(days=1))
                if key not in lists:
                    lists[key] = self._sent_to(*key)
                for created, sid, body in lists[key]:
                    if created >= since and body == message.body and sid not in taken:
                        found[message.recipient_id] = sid
                        taken.add(sid)
                        break
        except _CannotTell as error:
            log.warning("twilio: cannot tell which of %d message(s) Twilio already has: %s", len(messages), error)
            return None
        log.info("twilio: reconciled %d message(s): Twilio already had %d", len(messages), len(found))
        return found

    def _sent_to(self, to: str, sender: str, since: date) -> list[tuple[datetime, str, str | None]]:
        """(date_created, sid, body) of the Messages Twilio sent to ``to`` from this sender since that day."""
        service = self._settings.messaging_service_sid
        params: dict[str, str | int] = {"To": to}
        if not service:
            params["From"] = sender  # with a Messaging Service, Twilio picked the From: filter on the service
        params.update({"DateSent>": since.isoformat(), "PageSize": LIST_PAGE_SIZE})
        url: str | None = self._url
        sent: list[tuple[datetime, str, str | None]] = []
        pages = 0
        while url is not None:
            if pages == LIST_MAX_PAGES:
                raise _CannotTell(f"more than {LIST_MAX_PAGES} pages of Messages to {mask_phone(to)}")
            page = self._get_page(url, params)
            pages += 1
            params = {}  # the next page's URI carries the filters
            for item in page["messages"]:
                if not isinstance(item, dict):
                    raise _CannotTell("a listed Message is not an object")
                if item.get("to") != to or item.get("direction") == "inbound":
                    continue
                if item.get("messaging_service_sid" if service else "from") != (service or sender):
                    continue
                created, sid = _rfc2822(item.get("date_created")), item.get("sid")
                if created is None or not isinstance(sid, str) or not sid:
                    raise _CannotTell("a listed Message has no readable date_created or sid")
                sent.append((created, sid, item.get("body")))
            url = self._next_page(page.get("next_page_uri"))
        sent.sort(key=lambda entry: entry[0])
        return sent

    def _get_page(self, url: str, params: dict[str, str | int]) -> dict[str, Any]:
        try:
            response = self._session.get(
                url, params=params, timeout=self._settings.timeout_seconds, allow_redirects=False
            )
        except requests.RequestException as error:
            raise _CannotTell(f"{type(error).__name__} listing Messages") from None
        payload = _json_object(response)
        if response.status_code != 200:
            detail = payload.get("message") or response.reason
            raise _CannotTell(f"HTTP {response.status_code} (code {payload.get('code')}) {brief(str(detail))}")
        if not isinstance(payload.get("messages"), list):
            raise _CannotTell("the answer to a Message list has no messages")
        return payload

    def _next_page(self, uri: object) -> str | None:
        """The next page's URL, only ever on Twilio's own host and this account's Messages list."""
        if uri is None:
            return None
        path = self._url.removeprefix(self._settings.base_url)
        if not isinstance(uri, str) or not uri.startswith(path + "?"):
            raise _CannotTell("the list's next_page_uri is not this account's Messages list")
        return self._settings.base_url + uri

    def _form(self, message: OutboundSms) -> dict[str, str]:
        form = {"To": message.to, "Body": message.body}
        if self._settings.messaging_service_sid:
            # The Messaging Service picks the sender from its pool; the message's own sender is not sent.
            form["MessagingServiceSid"] = self._settings.messaging_service_sid
        else:
            form["From"] = message.sender
        callback = self._status_callback(message)
        if callback:
            form["StatusCallback"] = callback
        return form

    def _status_callback(self, message: OutboundSms) -> str | None:
        """``TWILIO_STATUS_CALLBACK_URL`` when set (a receiver of the operator's own), else the gateway's route."""
        if self._settings.status_callback_url:
            return self._settings.status_callback_url
        if self._callback_base:
            return twilio_callbacks.callback_url(self._callback_base, message.comm_id, message.index)
        return None

    def look_up(self, message_id: str) -> Receipt | None:
        """What Twilio says of a message now (``GET .../Messages/{sid}.json``), mapped as a callback's status is.

        None when Twilio cannot say: a transport failure, a 429 or 5xx, refused credentials, an answer that is not
        a Message, or a 404 (Twilio has no such message: deleted, or sent from another account), so the recipient
        keeps waiting for a receipt until the final wait calls it "no receipt". Never raises.
        """
        if not MESSAGE_SID.fullmatch(message_id):
            log.warning("twilio: cannot look up %r: not a Message sid", brief(message_id, 40))
            return None
        url = self._url.removesuffix(".json") + f"/{message_id}.json"
        try:
            response = self._session.get(url, timeout=self._settings.timeout_seconds, allow_redirects=False)
        except requests.RequestException as error:
            log.warning("twilio: look-up of %s failed: %s", message_id, type(error).__name__)
            return None
        payload = _json_object(response)
        if response.status_code != 200:
            log.warning("twilio: look-up of %s: HTTP %s (code %s)", message_id, response.status_code,
                        payload.get("code"))
            return None
        status = payload.get("status")
        if payload.get("sid") != message_id or not isinstance(status, str) or not status:
            log.warning("twilio: look-up of %s: the answer is not that Message", message_id)
            return None
        error_code = payload.get("error_code")
        error_message = payload.get("error_message")
        return Receipt(
            provider="twilio",
            message_id=message_id,
            provider_status=status.lower(),
            state=twilio_callbacks.state_of(status),
            error_code=str(error_code) if error_code not in (None, "") else None,
            error_message=error_message if isinstance(error_message, str) and error_message else None,
            occurred_at=_rfc2822(payload.get("date_updated")),
        )

    def _send_one(self, message: OutboundSms) -> tuple[SendResult, bool]:
        """One Message create; the flag is True when the answer means the service itself is unwell."""
        to = mask_phone(message.to)
        try:
            response = self._session.post(
                self._url, data=self._form(message), timeout=self._settings.timeout_seconds, allow_redirects=False
            )
        except requests.RequestException as error:
            code = _transport_failure(error)
            log.warning("twilio: %s for %s (recipient %s): %s", code, to, message.recipient_id, type(error).__name__)
            detail = f"{type(error).__name__} talking to Twilio"
            return SendResult(message.recipient_id, Outcome.RETRY, error_code=code, error_message=detail), True

        status = response.status_code
        payload = _json_object(response)
        if 200 <= status < 300:
            sid = payload.get("sid")
            if not isinstance(sid, str) or not sid:
                log.warning("twilio: HTTP %s without a sid for %s; counted as accepted", status, to)
                sid = None
            log.debug("twilio: accepted %s as %s", to, sid)
            return SendResult(message.recipient_id, Outcome.ACCEPTED, provider_message_id=sid,
                              segments=_segments(payload.get("num_segments"))), False

        code = str(payload["code"]) if payload.get("code") is not None else str(status)
        text = str(payload.get("message") or response.reason or f"HTTP {status}")
        if status == 429 or status >= 500 or code == QUEUE_FULL:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if code == QUEUE_FULL:
                retry_after = max(retry_after or 0, QUEUE_FULL_RETRY_SECONDS)
            log.warning("twilio: HTTP %s (code %s) for %s; retry after %s s", status, code, to, retry_after)
            result = SendResult(
                message.recipient_id,
                Outcome.RETRY,
                error_code=code,
                error_message=text,
                retry_after_seconds=retry_after,
            )
            return result, status in SERVICE_WIDE_STATUSES or code == QUEUE_FULL
        if status in (401, 403):
            # Credentials do not mend themselves between retries: FAILED, and said loudly for the operator.
            log.error(
                "twilio: HTTP %s (code %s) %s: Twilio refused this gateway's credentials; check TWILIO_ACCOUNT_SID "
                "and TWILIO_AUTH_TOKEN or TWILIO_API_KEY_SID/TWILIO_API_KEY_SECRET",
                status,
                code,
                brief(text),
            )
        else:
            log.warning("twilio: HTTP %s (code %s) for %s: %s", status, code, to, brief(text))
        return SendResult(message.recipient_id, Outcome.FAILED, error_code=code, error_message=text,
                          opted_out=code == UNSUBSCRIBED), False


def _segments(num_segments: object) -> int | None:
    """Twilio's ``num_segments`` (a string: ``"2"``) as a count; None when absent or ``"0"`` (a Messaging Service
    without a sender counts its segments only once it picks one)."""
    try:
        segments = int(str(num_segments))
    except ValueError:
        return None
    return segments if segments > 0 else None


def _new_session(settings: TwilioSettings, concurrency: int) -> requests.Session:
    """One pooled, authenticated session per provider, a connection per concurrent request; urllib3's own retries
    are off (delivery retries)."""
    session = requests.Session()
    session.auth = settings.basic_auth
    session.headers.update({"Accept": "application/json", "User-Agent": "sms-gateway (twilio provider)"})
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=concurrency, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _transport_failure(error: requests.RequestException) -> str:
    """Whether Twilio can have seen the request: ConnectFailed (certainly not), else Timeout or ConnectionLost."""
    if isinstance(error, requests.ConnectTimeout | requests.exceptions.SSLError | requests.exceptions.InvalidURL):
        return CONNECT_FAILED
    if isinstance(error, requests.Timeout):
        return TIMEOUT
    reason: Any = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    if isinstance(reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
        return CONNECT_FAILED
    return CONNECTION_LOST


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _utc(when: datetime) -> datetime:
    """An aware time; a naive one is taken as UTC (storage keeps UTC)."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _rfc2822(value: object) -> datetime | None:
    """Twilio's timestamps (``Fri, 24 May 2019 17:44:46 +0000``) as aware datetimes; None when unreadable."""
    if not isinstance(value, str):
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return _utc(when)



def create(settings: TwilioSettings, concurrency: int | None = None,
           public_base_url: str | None = None) -> TwilioProvider:
    """The registry's factory: a provider from already-read settings (``SMS_PROVIDER_CONCURRENCY`` and
    ``SMS_PUBLIC_BASE_URL``, when set)."""
    if not isinstance(settings, TwilioSettings):
        raise TypeError(f"the twilio provider needs TwilioSettings, not {type(settings).__name__}")
    if public_base_url and not settings.auth_token and not settings.status_callback_url:
        log.warning(
            "twilio: SMS_PUBLIC_BASE_URL is set but TWILIO_AUTH_TOKEN is not, so Twilio's status callbacks could "
            "not be checked: none are asked for, any that arrive answer 403, and receipts come only from looking "
            "messages up"
        )
    return TwilioProvider(settings, concurrency=concurrency or DEFAULT_CONCURRENCY, public_base_url=public_base_url)
