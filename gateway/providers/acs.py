"""Azure Communication Services SMS, through the official ``azure-communication-sms`` SDK.

This module imports the SDK at its top: the registry imports the module only when
``SMS_PROVIDER=acs``, so other deployments never pay for it at cold start.

Repeatability. ACS de-duplicates a recipient by ``repeatabilityRequestId`` together with
``repeatabilityFirstSent`` for 5 minutes after the first-sent time (a send with a known id and
matching request answers with the first result and does not send again; one whose first-sent is
older than the window is refused with 412). The SDK makes a random id and uses the current time
on every call, which would defeat that across our retries, so ``RepeatabilityPolicy`` replaces
both on each recipient of the request body with values derived from the message:

* ``repeatabilityFirstSent`` is ``OutboundSms.first_attempt_at`` (the time delivery first tried
  the recipient, kept across retries), to the second, in IMF-fixdate form;
* ``repeatabilityRequestId`` is ``uuid5(namespace, "<comm_id>:<recipient_id>:<first-sent>")``.

So every retry of a recipient within 5 minutes of its first attempt repeats the same pair and
ACS sends it at most once. Once the window has passed (or when delivery gives no
``first_attempt_at``), ACS can no longer de-duplicate: the message goes out as a new repeatable
request with first-sent = now and an id derived from that, never as a stale pair ACS would refuse.
Delivery reads ``resend_window_seconds`` to know how long a resend stays safe.
"""

from __future__ import annotations

import contextvars
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from azure.communication.sms import SmsClient
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy

from gateway.providers.acs_settings import AcsSettings
from gateway.providers.base import OutboundSms, Outcome, SendResult
from gateway.providers.common import (
    CONNECT_FAILED,
    CONNECTION_LOST,
    TIMEOUT,
    log_summary,
    parse_retry_after,
    send_in_turn,
)
from gateway.redact import brief, mask_phone

log = logging.getLogger(__name__)

REPEATABILITY_WINDOW_SECONDS = 300.0  # how long ACS remembers a repeatable request
REPEATABILITY_NAMESPACE = uuid.UUID("d9aceba6-9677-4231-81f1-58c11bf661b0")  # fixed forever: ids derive from it
MAX_RECIPIENTS_PER_CALL = 100  # the service's limit for one send
SERVICE_WIDE_STATUSES = frozenset({429, 503})
NO_CREDENTIAL = "CredentialUnavailable"  # the identity endpoint gave no token: ACS never saw the request
NO_RESULT = "NoResult"


@dataclass(frozen=True)
class Repeatability:
    request_id: str
    first_sent: str  # IMF-fixdate, e.g. "Tue, 26 Mar 2019 16:06:51 GMT"


def repeatability_for(message: OutboundSms, now: datetime) -> Repeatability:
    """The (id, first-sent) pair ACS de-duplicates on; the same for every retry within the window."""
    first = message.first_attempt_at
    if first is not None and first.tzinfo is None:
        first = first.replace(tzinfo=UTC)  # storage gives UTC; a naive value is taken as UTC too
    if first is None or (now - first).total_seconds() >= REPEATABILITY_WINDOW_SECONDS:
        first = now
    first_sent = format_datetime(first.astimezone(UTC).replace(microsecond=0), usegmt=True)
    name = f"{message.comm_id.hex}:{message.recipient_id.hex}:{first_sent}"
    return Repeatability(str(uuid.uuid5(REPEATABILITY_NAMESPACE, name)), first_sent)


# (to, repeatability) per recipient of the send under way in this thread or task; None outside our sends.
_PENDING: contextvars.ContextVar[list[tuple[str, Repeatability]] | None] = contextvars.ContextVar(
    "acs_repeatability", default=None
)


class RepeatabilityPolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """Replaces the SDK's random per-call repeatability values with ours, before the request is signed.

    A per-call policy runs ahead of the authentication policy, so the HMAC signature covers the
    rewritten body. It checks each recipient's ``to`` so a change in how the SDK builds the body
    fails loudly instead of pairing ids with the wrong numbers.
    """

    def on_request(self, request: PipelineRequest) -> None:  # type: ignore[type-arg]
        pending = _PENDING.get()
        if pending is None:
            return
        http_request = request.http_request
        body = json.loads(http_request.body)
        recipients = body.get("smsRecipients")
        if not isinstance(recipients, list) or len(recipients) != len(pending):
            raise RuntimeError("the ACS SDK built a send body this provider does not recognise")
        for recipient, (to, repeatability) in zip(recipients, pending, strict=True):
            if recipient.get("to") != to:
                raise RuntimeError("the ACS SDK reordered the recipients of a send")
            recipient["repeatabilityRequestId"] = repeatability.request_id
            recipient["repeatabilityFirstSent"] = repeatability.first_sent
        http_request.set_json_body(body)


# SDK calls in flight per batch when SMS_PROVIDER_CONCURRENCY is unset: one call carries up to 100 recipients, so a
# batch is one call unless its recipients need different senders or bodies.
DEFAULT_CONCURRENCY = 1


class AcsProvider:
    """Sends through ACS, one SDK call per (communication, sender, body) group of up to 100 recipients."""

    name = "acs"
    max_batch_size = MAX_RECIPIENTS_PER_CALL
    resend_is_safe = True  # within resend_window_seconds of the first attempt; see the module docstring
    resend_window_seconds: float | None = REPEATABILITY_WINDOW_SECONDS

    def __init__(
        self,
        settings: AcsSettings,
        *,
        credential: TokenCredential | None = None,
        clock: Callable[[], datetime] | None = None,
        concurrency: int = 1,
    ) -> None:
        self._client = _build_client(settings, credential)
        self._concurrency = concurrency
        self._call_seconds = settings.call_seconds
        self._clock = clock or (lambda: datetime.now(UTC))

    def send(self, messages: Sequence[OutboundSms], deadline: float | None = None) -> list[SendResult]:
        results = send_in_turn(messages, _plan_calls(messages), self._send_call, deadline=deadline,
                               call_seconds=self._call_seconds, concurrency=self._concurrency)
        log_summary(log, "acs", results)
        return results

    def _send_call(self, batch: Sequence[OutboundSms]) -> tuple[list[SendResult], bool]:
        """One SDK send; the flag is True when the failure speaks for the whole service."""
        first = batch[0]
        now = self._clock()
        token = _PENDING.set([(message.to, repeatability_for(message, now)) for message in batch])
        try:
            answers = self._client.send(
                from_=first.sender,
                to=[message.to for message in batch],
                message=first.body,
                enable_delivery_report=True,
                tag=first.comm_id.hex,
            )
        except HttpResponseError as error:
            return _whole_call_answer(batch, error)
        except ServiceRequestError as error:
            log.warning("acs: %s for %d recipient(s): %s", CONNECT_FAILED, len(batch), type(error).__name__)
            return _all(batch, Outcome.RETRY, CONNECT_FAILED, f"{type(error).__name__} reaching ACS"), True
        except ServiceResponseError as error:
            code = TIMEOUT if isinstance(error, ServiceResponseTimeoutError) else CONNECTION_LOST
            log.warning("acs: %s for %d recipient(s): %s", code, len(batch), type(error).__name__)
            return _all(batch, Outcome.RETRY, code, f"{type(error).__name__} waiting for ACS"), True
        except AzureError as error:
            # An answer that could not be read: ACS may have sent, and the repeatability pair makes a resend safe.
            log.warning("acs: unreadable answer for %d recipient(s): %s", len(batch), type(error).__name__)
            return _all(batch, Outcome.RETRY, CONNECTION_LOST, f"{type(error).__name__}: {error.message}"), False
        finally:
            _PENDING.reset(token)
        return _per_recipient(batch, answers), False


def _per_recipient(batch: Sequence[OutboundSms], answers: Sequence[Any]) -> list[SendResult]:
    """Each recipient's own answer, found by number (one call never repeats a number)."""
    by_to = {answer.to: answer for answer in answers}
    results: list[SendResult] = []
    for position, message in enumerate(batch):
        answer = by_to.get(message.to)
        if answer is None and len(answers) == len(batch):
            answer = answers[position]  # ACS wrote the number differently; it answers in request order
        if answer is None:
            log.warning("acs: no result for %s", mask_phone(message.to))
            results.append(SendResult(message.recipient_id, Outcome.RETRY, error_code=NO_RESULT))
            continue
        if answer.successful:
            results.append(SendResult(message.recipient_id, Outcome.ACCEPTED, provider_message_id=answer.message_id))
            continue
        status = int(answer.http_status_code)
        text = answer.error_message or f"HTTP {status}"
        # 412: the first-sent time fell outside ACS's window (clocks apart); the next attempt uses a fresh pair.
        outcome = Outcome.RETRY if status in (412, 429) or status >= 500 else Outcome.FAILED
        log.warning("acs: %s %s for %s: %s", outcome, status, mask_phone(message.to), brief(text))
        results.append(SendResult(message.recipient_id, outcome, error_code=str(status), error_message=text))
    return results


def _whole_call_answer(batch: Sequence[OutboundSms], error: HttpResponseError) -> tuple[list[SendResult], bool]:
    status = error.status_code
    text = _first_line(error.message)[:1000]
    if status is None:
        # No HTTP answer from ACS at all: the credential could not get a token (the identity endpoint failed).
        log.error("acs: no token for ACS (%s); check the managed identity and ACS_CLIENT_ID", type(error).__name__)
        return _all(batch, Outcome.RETRY, NO_CREDENTIAL, text), True
    if status == 429 or status >= 500:
        response = error.response
        retry_after = parse_retry_after(response.headers.get("Retry-After")) if response is not None else None
        log.warning("acs: HTTP %s for %d recipient(s); retry after %s s", status, len(batch), retry_after)
        results = _all(batch, Outcome.RETRY, str(status), text, retry_after)
        return results, status in SERVICE_WIDE_STATUSES
    if status in (401, 403):
        log.error(
            "acs: HTTP %s: ACS refused this gateway's credentials (%s); check ACS_CONNECTION_STRING, or the "
            "identity's role on the resource when using ACS_ENDPOINT",
            status,
            brief(text),
        )
    else:
        log.warning("acs: HTTP %s for %d recipient(s): %s", status, len(batch), brief(text))
    return _all(batch, Outcome.FAILED, str(status), text), False


def _all(
    batch: Sequence[OutboundSms], outcome: Outcome, code: str, text: str, retry_after: float | None = None
) -> list[SendResult]:
    return [
        SendResult(message.recipient_id, outcome, error_code=code, error_message=text, retry_after_seconds=retry_after)
        for message in batch
    ]


def _plan_calls(messages: Sequence[OutboundSms]) -> list[list[int]]:
    """Indexes grouped into SDK calls: one (comm, sender, body) each, at most 100, no number twice in a call."""
    groups: dict[tuple[uuid.UUID, str, str], list[int]] = {}
    for index, message in enumerate(messages):
        groups.setdefault((message.comm_id, message.sender, message.body), []).append(index)
    calls: list[list[int]] = []
    for indexes in groups.values():
        group_calls: list[tuple[list[int], set[str]]] = []
        for index in indexes:
            to = messages[index].to
            for call, numbers in group_calls:
                if len(call) < MAX_RECIPIENTS_PER_CALL and to not in numbers:
                    call.append(index)
                    numbers.add(to)
                    break
            else:
                group_calls.append(([index], {to}))
        calls.extend(call for call, _ in group_calls)
    return calls


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text and text.strip() else ""


def _build_client(settings: AcsSettings, credential: TokenCredential | None) -> SmsClient:
    """The SDK client: the SDK's own retries off (delivery retries, with Retry-After), our time-outs, our policy."""
    options: dict[str, Any] = {
        "connection_timeout": settings.timeout_seconds,
        "read_timeout": settings.timeout_seconds,
        "retry_total": 0,
        "per_call_policies": [RepeatabilityPolicy()],
    }
    if settings.ca_bundle:
        options["connection_verify"] = settings.ca_bundle  # tests only: trust a local fake's certificate
    if settings.connection_string:
        if credential is not None:
            raise ValueError("give a credential with an endpoint, not with a connection string")
        return SmsClient.from_connection_string(settings.connection_string, **options)
    if not settings.endpoint:
        raise ValueError("AcsSettings needs a connection string or an endpoint")
    return SmsClient(settings.endpoint, credential or _identity(settings.client_id), **options)


def _identity(client_id: str | None) -> TokenCredential:
    """A user-assigned managed identity when a client id is given, else the default chain (system identity, az)."""
    if client_id:
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=client_id)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()



def create(settings: AcsSettings, concurrency: int | None = None) -> AcsProvider:
    """The registry's factory: a provider from already-read settings (``SMS_PROVIDER_CONCURRENCY``, when set)."""
    if not isinstance(settings, AcsSettings):
        raise TypeError(f"the acs provider needs AcsSettings, not {type(settings).__name__}")
    return AcsProvider(settings, concurrency=concurrency or DEFAULT_CONCURRENCY)
