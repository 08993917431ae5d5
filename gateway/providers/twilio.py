"""Twilio Programmable Messaging, spoken directly over its REST API with ``requests``.

One ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` per recipient (Twilio has no batch
send), through one pooled ``requests.Session``. Twilio has no idempotency key, so a request whose
answer was lost may already have produced an SMS: ``resend_is_safe`` is False, and a RETRY's
``error_code`` says whether Twilio may have the message (``Timeout``, ``ConnectionLost``) or
certainly does not (``ConnectFailed``, ``NotAttempted``, or an HTTP 429/5xx answer).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from gateway.providers.base import OutboundSms, Outcome, SendResult
from gateway.providers.common import (
    CONNECT_FAILED,
    CONNECTION_LOST,
    NOT_ATTEMPTED,
    TIMEOUT,
    brief,
    mask_phone,
    parse_retry_after,
)
from gateway.settings import TwilioSettings

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
# Answers that speak for the whole service, not the one message: the rest of the batch is not tried now.
SERVICE_WIDE_STATUSES = frozenset({429, 503})
POOL_SIZE = 10


class TwilioProvider:
    """Sends each OutboundSms as one Twilio Message; never raises for Twilio's or the network's failures."""

    name = "twilio"
    max_batch_size = 100  # a batch is a loop of single requests; this bounds how long one delivery call takes
    resend_is_safe = False  # no idempotency key: a resend after a lost answer can reach the phone twice
    resend_window_seconds: float | None = 0.0

    def __init__(self, settings: TwilioSettings, *, session: requests.Session | None = None) -> None:
        self._settings = settings
        self._url = f"{settings.base_url}/{API_VERSION}/Accounts/{settings.account_sid}/Messages.json"
        self._session = session if session is not None else _new_session(settings)

    def close(self) -> None:
        self._session.close()

    def send(self, messages: Sequence[OutboundSms]) -> list[SendResult]:
        results: list[SendResult] = []
        halted_by: SendResult | None = None
        for message in messages:
            if halted_by is not None:
                results.append(
                    SendResult(
                        message.recipient_id,
                        Outcome.RETRY,
                        error_code=NOT_ATTEMPTED,
                        error_message=f"not sent: an earlier message in this batch got {halted_by.error_code}",
                        retry_after_seconds=halted_by.retry_after_seconds,
                    )
                )
                continue
            result, service_wide = self._send_one(message)
            results.append(result)
            if service_wide:
                halted_by = result
        _log_summary(results)
        return results

    def _form(self, message: OutboundSms) -> dict[str, str]:
        form = {"To": message.to, "Body": message.body}
        if self._settings.messaging_service_sid:
            # The Messaging Service picks the sender from its pool; the message's own sender is not sent.
            form["MessagingServiceSid"] = self._settings.messaging_service_sid
        else:
            form["From"] = message.sender
        if self._settings.status_callback_url:
            form["StatusCallback"] = self._settings.status_callback_url
        return form

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
            return SendResult(message.recipient_id, Outcome.ACCEPTED, provider_message_id=sid), False

        code = str(payload["code"]) if payload.get("code") is not None else str(status)
        text = str(payload.get("message") or response.reason or f"HTTP {status}")
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            log.warning("twilio: HTTP %s (code %s) for %s; retry after %s s", status, code, to, retry_after)
            result = SendResult(
                message.recipient_id,
                Outcome.RETRY,
                error_code=code,
                error_message=text,
                retry_after_seconds=retry_after,
            )
            return result, status in SERVICE_WIDE_STATUSES
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
        return SendResult(message.recipient_id, Outcome.FAILED, error_code=code, error_message=text), False


def _new_session(settings: TwilioSettings) -> requests.Session:
    """One pooled, authenticated session per provider; urllib3's own retries are off (delivery retries)."""
    session = requests.Session()
    session.auth = settings.basic_auth
    session.headers.update({"Accept": "application/json", "User-Agent": "sms-gateway (twilio provider)"})
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=POOL_SIZE, max_retries=0)
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


def _log_summary(results: Sequence[SendResult]) -> None:
    if not results:
        return
    counts = {outcome: 0 for outcome in Outcome}
    for result in results:
        counts[result.outcome] += 1
    log.info(
        "twilio: %d sent: %d accepted, %d failed, %d to retry",
        len(results),
        counts[Outcome.ACCEPTED],
        counts[Outcome.FAILED],
        counts[Outcome.RETRY],
    )


def create(settings: TwilioSettings) -> TwilioProvider:
    """The registry's factory: a provider from already-read settings."""
    if not isinstance(settings, TwilioSettings):
        raise TypeError(f"the twilio provider needs TwilioSettings, not {type(settings).__name__}")
    return TwilioProvider(settings)
