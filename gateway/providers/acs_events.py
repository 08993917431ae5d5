"""ACS events as Event Grid delivers them: the key, the handshake, delivery reports read into a ``Receipt`` and
inbound messages (``Microsoft.Communication.SMSReceived``) into an ``InboundMessage``.

ACS publishes ``Microsoft.Communication.SMSDeliveryReportReceived`` to Event Grid, which POSTs a JSON
array of events (Event Grid schema: ``id``, ``topic``, ``subject``, ``eventType``, ``dataVersion``,
``eventTime``, ``data``) to the gateway's ``/api/providers/acs/events?key=…``. Before the first event
it checks the endpoint with a ``Microsoft.EventGrid.SubscriptionValidationEvent`` (header
``aeg-event-type: SubscriptionValidation``), answered ``200 {"validationResponse": <data.validationCode>}``.
(MicrosoftDocs azure-docs ``articles/event-grid/communication-services-telephony-sms-events.md`` and
``end-point-validation-event-grid-events-schema.md``.)

Plain JSON and the standard library only: the route serves whatever ``SMS_PROVIDER`` is (reports for
earlier ACS sends still arrive after a switch), so it must not load the ACS SDK. Microsoft's samples
spell ``data``'s names both ways (``Tag``, ``From``; ``messageId``, ``MessageId``) and numbers with and
without ``+``, so names are read case-insensitively and numbers normalised to E.164.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.inbound import InboundMessage, InboundOutcome
from gateway.receipts import Receipt, ReceiptOutcome, ReceiptState
from gateway.redact import brief, mask_phone

log = logging.getLogger(__name__)

PROVIDER = "acs"
KEY_PARAMETER = "key"
KEY_CHALLENGE = 'Key realm="acs-events", param="key"'  # a 401 names its challenge: a key in the query string
EVENT_TYPE_HEADER = "aeg-event-type"
VALIDATION_DELIVERY = "SubscriptionValidation"  # the header's value on a handshake; "Notification" otherwise
VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
DELIVERY_REPORT_EVENT = "Microsoft.Communication.SMSDeliveryReportReceived"
RECEIVED_EVENT = "Microsoft.Communication.SMSReceived"  # data: messageId, from, to, message, receivedTimestamp
# Event Grid batches up to 1,024 KB (a single larger event, up to 1 MB, alone): twice that leaves room, and
# anything bigger is not Event Grid's.
MAX_BATCH_BYTES = 2 * 1024 * 1024

SENDER_BLOCKED = "sender blocked for given recipient"  # the recipient opted out of this sender (lower case)
STATES = {"delivered": ReceiptState.DELIVERED, "failed": ReceiptState.FAILED}  # ACS's two deliveryStatus values
COMM_ID = re.compile(r"[0-9a-f]{32}")  # what the ACS provider sets as the tag: the CommId in N form
PHONE_NUMBER = re.compile(r"\+?[1-9]\d{1,14}")


class MalformedBatch(ValueError):
    """The body is not a JSON array: nothing in it can be read, and resending it will not help."""


class MalformedEvent(ValueError):
    """One event cannot be read (not an object, no event type, a report without a message id)."""


@dataclass(frozen=True)
class Validation:
    """Event Grid asks the endpoint to prove it wants the subscription's events."""

    code: str


@dataclass(frozen=True)
class Ignored:
    """An event read and left alone: another type, or a report about a message that is not the gateway's."""

    reason: str


@dataclass
class BatchResult:
    """What one delivery held: the handshake's code, each receipt's outcome, and the events that could not be read."""

    validation_code: str | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (position in the array, why)

    def summary(self) -> dict[str, int]:
        """Counts for the answer's body and the log line: nothing personal."""
        return dict(self.outcomes) | ({"malformed": len(self.problems)} if self.problems else {})


def key_matches(given: str | None, expected: str) -> bool:
    """The query's key against ``SMS_EVENTGRID_KEY``, in constant time."""
    return given is not None and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def handshake_answer(code: str) -> str:
    """The body that completes Event Grid's synchronous handshake (it must come with 200, not 202)."""
    return json.dumps({"validationResponse": code})


def parse_batch(body: bytes) -> list[Any]:
    """The delivery's events; a body that is not a JSON array is ``MalformedBatch``."""
    try:
        events = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise MalformedBatch(f"the body is not JSON ({type(error).__name__})") from None
    if not isinstance(events, list):
        raise MalformedBatch("the body is not a JSON array of Event Grid events")
    return events


def read_event(event: Any) -> Receipt | InboundMessage | Validation | Ignored:
    """One Event Grid event as what it means to the gateway; ``MalformedEvent`` when it cannot be read."""
    if not isinstance(event, Mapping):
        raise MalformedEvent("an event is not a JSON object")
    envelope = _folded(event)
    event_type = envelope.get("eventtype")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEvent("the event has no eventType")
    data = envelope.get("data")
    if event_type.lower() == VALIDATION_EVENT.lower():
        code = _folded(data).get("validationcode") if isinstance(data, Mapping) else None
        if not isinstance(code, str) or not code:
            raise MalformedEvent("a subscription validation event without data.validationCode")
        return Validation(code)
    if event_type.lower() == RECEIVED_EVENT.lower():
        if not isinstance(data, Mapping):
            raise MalformedEvent("an SMSReceived event without a data object")
        return _received(_folded(data), envelope.get("eventtime"))
    if event_type.lower() != DELIVERY_REPORT_EVENT.lower():
        return Ignored(f"event type {brief(event_type, 120)} is not handled here")
    if not isinstance(data, Mapping):
        raise MalformedEvent("a delivery report without a data object")
    return _delivery_report(_folded(data), envelope.get("eventtime"))


def receive(events: list[Any], apply: Callable[[Receipt], ReceiptOutcome],
            inbound: Callable[[InboundMessage], InboundOutcome] | None = None) -> BatchResult:
    """Every event of a delivery, each on its own: one that cannot be read does not stop the others.

    ``apply`` stores a receipt and ``inbound`` an inbound message (both idempotently); a storage failure either
    raises ends the delivery so that Event Grid sends it again, the events already stored included, which then
    change nothing. Without ``inbound``, inbound messages are ignored.
    """
    result = BatchResult()
    for position, event in enumerate(events):
        event_id = _event_id(event)
        try:
            meaning = read_event(event)
        except MalformedEvent as problem:
            log.warning("acs events: event %d (id %s) cannot be read: %s", position, event_id, problem)
            result.problems.append((position, str(problem)))
            continue
        if isinstance(meaning, Validation):
            log.info("acs events: subscription validation handshake answered (event id %s)", event_id)
            result.validation_code = meaning.code
        elif isinstance(meaning, Ignored):
            log.info("acs events: event id %s ignored: %s", event_id, meaning.reason)
            result.outcomes["ignored"] += 1
        elif isinstance(meaning, InboundMessage):
            if inbound is None:
                result.outcomes["ignored"] += 1
                continue
            received = inbound(meaning)
            log.info("acs events: inbound %s from %s: %s", brief(meaning.message_id, 80), mask_phone(meaning.sender),
                     received)
            result.outcomes[f"inbound {received}"] += 1
        else:
            outcome = apply(meaning)
            log.info("acs events: report %s %s for %s: %s", meaning.message_id, meaning.provider_status,
                     mask_phone(meaning.to), outcome)
            result.outcomes[str(outcome)] += 1
    return result


def _delivery_report(data: Mapping[str, Any], event_time: Any) -> Receipt | Ignored:
    message_id = data.get("messageid")
    if not isinstance(message_id, str) or not message_id:
        raise MalformedEvent("a delivery report without data.messageId")
    status = data.get("deliverystatus")
    if not isinstance(status, str) or not status:
        raise MalformedEvent("a delivery report without data.deliveryStatus")
    tag = data.get("tag")
    comm_id = None
    if tag is not None:
        if not isinstance(tag, str) or not COMM_ID.fullmatch(tag.strip().lower()):
            return Ignored("its tag is not a CommId: a message another application sent")
        comm_id = uuid.UUID(tag.strip())
    state = STATES.get(status.strip().lower())
    details = data.get("deliverystatusdetails")
    return Receipt(
        provider=PROVIDER,
        message_id=message_id,
        provider_status=status.strip(),
        state=state,
        error_message=details if isinstance(details, str) and details and state is not ReceiptState.DELIVERED
        else None,
        occurred_at=_timestamp(data.get("receivedtimestamp")) or _timestamp(event_time),
        comm_id=comm_id,
        to=normalise_number(data.get("to")),
        opted_out=state is ReceiptState.FAILED and isinstance(details, str)
        and details.strip().lower() == SENDER_BLOCKED,
        segments=_segments(data.get("deliveryattempts")),
    )


def _segments(attempts: Any) -> int | None:
    """The parts of the last delivery attempt (``segmentsSucceeded`` + ``segmentsFailed``); None when the report
    has no readable attempt."""
    if not isinstance(attempts, list) or not attempts or not isinstance(attempts[-1], Mapping):
        return None
    last = _folded(attempts[-1])
    counts = [last.get("segmentssucceeded"), last.get("segmentsfailed")]
    if not all(isinstance(count, int) and not isinstance(count, bool) and count >= 0 for count in counts):
        return None
    return sum(counts) or None


def _received(data: Mapping[str, Any], event_time: Any) -> InboundMessage:
    message_id = data.get("messageid")
    if not isinstance(message_id, str) or not message_id.strip():
        raise MalformedEvent("an SMSReceived event without data.messageId")
    sender, to = normalise_number(data.get("from")), normalise_number(data.get("to"))
    if sender is None or to is None:
        raise MalformedEvent("an SMSReceived event without a phone number in data.from and data.to")
    body = data.get("message")
    return InboundMessage(provider=PROVIDER, message_id=message_id.strip(), sender=sender, to=to,
                          body=body if isinstance(body, str) else "",
                          received_at=_timestamp(data.get("receivedtimestamp")) or _timestamp(event_time))


def normalise_number(raw: Any) -> str | None:
    """``15555555555`` or ``+1 555 555 5555`` as ``+15555555555``; None for anything that is not a number."""
    if not isinstance(raw, str):
        return None
    compact = re.sub(r"[\s().-]", "", raw)
    if not PHONE_NUMBER.fullmatch(compact):
        return None
    return "+" + compact.lstrip("+")


def _timestamp(raw: Any) -> datetime | None:
    """An ISO 8601 time (ACS writes seven fractional digits, which Python cuts to six); naive means UTC."""
    if not isinstance(raw, str) or not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _folded(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Names lower-cased (``Tag`` and ``tag`` alike); where both spellings appear, the first one wins."""
    folded: dict[str, Any] = {}
    for name, value in mapping.items():
        if isinstance(name, str):
            folded.setdefault(name.lower(), value)
    return folded


def _event_id(event: Any) -> str:
    """The event's id for a log line (Event Grid's, or ACS's message id), cut short."""
    if isinstance(event, Mapping):
        value = _folded(event).get("id")
        if isinstance(value, str):
            return brief(value, 80)
    return "<none>"
