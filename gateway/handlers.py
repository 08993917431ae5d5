"""What each operation does with a call: one handler per operation of the route table.

Handlers know nothing of Azure Functions or of formats: the HTTP adapter (``gateway.http``) has
already negotiated the answer's format, authenticated the caller when the operation needs one,
and split the path; a handler returns a DTO (or a ``Document``) or raises an ``ApiError``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError

from gateway.auth import Principal
from gateway.comm_events import events_of
from gateway.errors import ApiError, FieldError, forbidden, not_found, service_unavailable
from gateway.idempotency import read_key
from gateway.message_list import read_query
from gateway.models import (
    CommResponse,
    HealthResponse,
    OptOut,
    OptOutRequest,
    OptOutsResponse,
    SMSCancelResponse,
    SMSLogResponse,
    SMSSend,
    SMSStatusResponse,
    Webhook,
    WebhookEventEntry,
    WebhookEventsResponse,
    WebhookRegistration,
    WebhookRequest,
    WireModel,
)
from gateway.optouts import OptOut as ListedNumber
from gateway.providers import acs_events
from gateway.redact import brief, describe
from gateway.runtime import get_gateway
from gateway.settings import get_settings
from gateway.storage import TooLargeToStore
from gateway.validation import too_large_to_store, validate_number
from gateway.webhook_outbox import EventNotFailed, EventNotFound, StoredEvent
from gateway.webhook_urls import RefusedUrl
from gateway.wire import decode_body

if TYPE_CHECKING:
    from gateway.routes import Route

T = TypeVar("T")
log = logging.getLogger("gateway.handlers")


@dataclass(frozen=True)
class Call:
    """One request, as a handler sees it."""

    route: Route
    values: Mapping[str, str]  # the path's values, a .json/.jsv suffix already taken off
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    url: str
    principal: Principal | None = None  # set by the adapter for authenticated operations only

    @property
    def caller(self) -> Principal:
        """The authenticated caller; only an operation marked ``authenticated`` has one."""
        if self.principal is None:
            raise RuntimeError(f"{self.route.operation.name} is not authenticated, so its calls have no caller")
        return self.principal


@dataclass(frozen=True)
class Document:
    """An answer that is not a DTO, sent as it is: in the operation's ``media_type`` unless it names its own.

    Provider callbacks answer this way too (an empty 204, TwiML, Event Grid's handshake): they are not
    ServiceStack clients, so they get no negotiated format.
    """

    text: str
    status: int = 200
    media_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # more headers: the console's security headers


def send(call: Call) -> CommResponse:
    gateway = get_gateway()
    key = read_key(call.headers, call.query)
    body_format = call.values.get("format") if call.route.predefined else None
    data = decode_body(call.headers, call.body, call.query, max_bytes=gateway.settings.max_request_bytes,
                       predefined=body_format)
    try:
        return gateway.service.send(call.caller, parse_dto(SMSSend, data), immediate=call.route.immediate,
                                    idempotency_key=key)
    except TooLargeToStore as error:  # raised before anything is written
        raise too_large_to_store(error) from None


def resend(call: Call) -> CommResponse:
    """A new communication for the recipients a communication did not reach; the body, if any, is not read."""
    key = read_key(call.headers, call.query)
    return get_gateway().service.resend(call.caller, call.values["commId"], idempotency_key=key)


def status_by_id(call: Call) -> SMSStatusResponse:
    return get_gateway().status.by_id(call.caller, call.values["commId"])


def status_by_reference(call: Call) -> SMSStatusResponse:
    return get_gateway().status.by_reference(call.caller, call.values["reference"])


def message_log(call: Call) -> SMSLogResponse:
    """A page of the caller's communications, newest first; only the caller's licensee's index is ever read."""
    gateway = get_gateway()
    if gateway.log is None:
        raise RuntimeError("the gateway was composed without its message log")
    return gateway.log.page(call.caller.licensee_id, read_query(call.query, call.caller.licensee_id, gateway.settings))


def cancel(call: Call) -> SMSCancelResponse:
    return get_gateway().canceler.by_id(call.caller, call.values["commId"])


OPT_OUT_REASON_API = "api"  # a number the licensee's own systems added
OPT_OUT_SOURCE_API = "api"


def optouts_list(call: Call) -> OptOutsResponse:
    """The caller's licensee's opt-out list; no other licensee's is ever read (one partition per licensee)."""
    return OptOutsResponse(OptOuts=[_opt_out(entry) for entry in get_gateway().optouts.list(call.caller.licensee_id)])


def optouts_add(call: Call) -> OptOut:
    """Add a number to the caller's list; adding one already listed records it again, now, as the API's."""
    gateway = get_gateway()
    data = decode_body(call.headers, call.body, call.query, max_bytes=gateway.settings.max_request_bytes)
    number = validate_number(parse_dto(OptOutRequest, data).PhoneNumber, "PhoneNumber", gateway.settings)
    gateway.optouts.add(call.caller.licensee_id, number, reason=OPT_OUT_REASON_API, source=OPT_OUT_SOURCE_API)
    listed = gateway.optouts.find(call.caller.licensee_id, number)
    if listed is None:  # removed again between the two calls: say what was asked
        return OptOut(PhoneNumber=number, Reason=OPT_OUT_REASON_API, Source=OPT_OUT_SOURCE_API)
    return _opt_out(listed)


def optouts_remove(call: Call) -> OptOut:
    """Take a number off the caller's list and answer what it was; 404 when it is not on it."""
    gateway = get_gateway()
    number = validate_number(call.values["phoneNumber"], "PhoneNumber", gateway.settings)
    listed = gateway.optouts.find(call.caller.licensee_id, number)
    if listed is None:
        raise not_found("That number is not on this licensee's opt-out list")
    gateway.optouts.remove(call.caller.licensee_id, number, source=OPT_OUT_SOURCE_API)
    return _opt_out(listed)


def _opt_out(entry: ListedNumber) -> OptOut:
    return OptOut(PhoneNumber=entry.number, Reason=entry.reason, Source=entry.source, At=entry.at)


def webhook_set(call: Call) -> WebhookRegistration:
    """Register the caller's webhook URL with a new secret (the one it replaces signs too for 24 hours)."""
    gateway = get_gateway()
    data = decode_body(call.headers, call.body, call.query, max_bytes=gateway.settings.max_request_bytes)
    url = (parse_dto(WebhookRequest, data).Url or "").strip()
    if not url:
        raise ApiError.validation([FieldError("Url", "NotEmpty", "'Url' must not be empty.")])
    try:
        endpoint = gateway.webhook_endpoints.set(call.caller.licensee_id, url)
    except RefusedUrl as refused:
        raise ApiError.validation([FieldError("Url", "InvalidUrl", f"'Url' is refused: {refused}.")]) from None
    gateway.webhook_directory.forget(call.caller.licensee_id)
    return WebhookRegistration(Url=endpoint.url, Secret=endpoint.secret)


def webhook_show(call: Call) -> Webhook:
    """The caller's webhook URL, never its secret; 404 when none is registered."""
    endpoint = get_gateway().webhook_endpoints.find(call.caller.licensee_id)
    if endpoint is None:
        raise not_found("This licensee has no webhook; register one with PUT /api/webhook")
    return Webhook(Url=endpoint.url)


def webhook_delete(call: Call) -> Webhook:
    """Remove the caller's webhook and its secrets: no event is posted any more; 404 when none is registered."""
    gateway = get_gateway()
    removed = gateway.webhook_endpoints.delete(call.caller.licensee_id)
    gateway.webhook_directory.forget(call.caller.licensee_id)
    if removed is None:
        raise not_found("This licensee has no webhook")
    return Webhook(Url=removed.url)


WEBHOOK_STATUS_PARAMETER = "status"
LISTED_WEBHOOK_STATUSES = ("failed",)


def webhook_events_list(call: Call) -> WebhookEventsResponse:
    """The caller's licensee's Failed webhook events, newest first (the only status listed: the others move)."""
    asked = next((value for name, value in call.query.items() if name.lower() == WEBHOOK_STATUS_PARAMETER), "failed")
    if asked.lower() not in LISTED_WEBHOOK_STATUSES:
        raise ApiError.validation([FieldError("Status", "InvalidStatus",
                                              f"'Status' must be one of: {', '.join(LISTED_WEBHOOK_STATUSES)}.")])
    events = get_gateway().webhook_outbox.failed(call.caller.licensee_id)
    return WebhookEventsResponse(Events=[_webhook_event(event) for event in events])


def communication_events(call: Call) -> WebhookEventsResponse:
    """The webhook events of one of the caller's communications, oldest first; 404 as its status answers."""
    gateway = get_gateway()
    snapshot = gateway.status.snapshot(call.caller, call.values["commId"])
    return WebhookEventsResponse(Events=[_webhook_event(event) for event in events_of(gateway.webhook_outbox,
                                                                                      snapshot)])


def webhook_event_retry(call: Call) -> WebhookEventEntry:
    """Send one of the caller's Failed events again (a fresh round of retries); 404 for an event not the
    caller's, 409 for one that is not Failed."""
    try:
        event = get_gateway().webhook_outbox.retry(call.caller.licensee_id, call.values["eventId"])
    except EventNotFound:
        raise not_found("No webhook event with that id for this licensee") from None
    except EventNotFailed as error:
        raise ApiError(409, "EventNotFailed", f"Only a Failed event can be sent again: {error}") from None
    return _webhook_event(event)


def _webhook_event(event: StoredEvent) -> WebhookEventEntry:
    return WebhookEventEntry(Id=event.event_id, Type=event.type, Status=event.status, Attempts=event.attempts,
                             LastError=event.last_error or None, CommId=event.comm_id or None,
                             CreatedAt=event.created_at, LastAttemptAt=event.last_attempt_at,
                             FailedAt=event.failed_at, Body=event.body)


def health(call: Call) -> HealthResponse:
    try:
        get_gateway().probe.check()
    except Exception as error:  # any failure to reach storage means "not healthy"
        log.warning("health check failed: %s", describe(error))
        raise service_unavailable("Storage is not answering") from None
    return HealthResponse(Provider=get_gateway().settings.provider)


def metadata_page(call: Call) -> Document:
    from gateway.metadata.html import metadata_html  # built on first use: no cost at cold start

    return Document(metadata_html(urlsplit(call.url).netloc or None))


def console_page(call: Call) -> Document:
    """The console's index.html or one of its shipped files (``gateway.console_page``); 404 for any other name."""
    from gateway.console_page import console_file

    return console_file(call.values.get("file"))


def openapi_spec(call: Call) -> Document:
    from gateway.metadata.openapi import openapi_json

    parts = urlsplit(call.url)
    return Document(openapi_json(f"{parts.scheme}://{parts.netloc}"))


def twilio_status(call: Call) -> Document:
    """A Twilio status callback: checked, stored as a receipt, then answered 204 (Twilio does not retry).

    Forged or unsigned: 403 and nothing read. Signed but without a MessageSid or MessageStatus: 400. Anything
    else, an unknown sid included, is handed to the receipt book and answered 204 once it is stored.
    """
    from gateway.providers import twilio_callbacks

    gateway = get_gateway()
    receipt = _signed_by_twilio(call, twilio_callbacks.read_callback, "status callback")
    outcome = gateway.receipts.apply(receipt)
    log.info("twilio status callback: %s %s -> %s", brief(receipt.message_id, 40), brief(receipt.provider_status, 40),
             outcome)
    return Document("", status=204)


def _signed_by_twilio(call: Call, read: Callable[..., T], what: str) -> T:
    """What ``read`` parses from a Twilio request once its X-Twilio-Signature checks out: 403 when it does not
    (nothing read), 400 naming the field Twilio always sends when it is missing."""
    from gateway.providers import twilio_callbacks, twilio_signature
    from gateway.providers.twilio_settings import TwilioSettings

    settings = get_gateway().settings
    twilio = settings.provider_settings
    try:
        return read(request_url=call.url, public_base_url=settings.public_base_url,
                    auth_token=twilio.auth_token if isinstance(twilio, TwilioSettings) else None,
                    signature=call.headers.get(twilio_signature.HEADER.lower()), body=call.body)
    except twilio_callbacks.ForgedCallback as refused:
        log.warning("twilio %s refused: %s", what, refused)
        raise forbidden("The X-Twilio-Signature is not this account's for this URL and body") from None
    except twilio_callbacks.MalformedCallback as malformed:
        log.warning("twilio %s without %s ignored", what, malformed.field)
        raise ApiError.validation([FieldError(malformed.field, "NotEmpty", f"'{malformed.field}' must not be empty.")]
                                  ) from None


def twilio_inbound(call: Call) -> Document:
    """A message a phone sent to one of our Twilio numbers: checked, stored (and matched), then an empty TwiML.

    Forged or unsigned: 403 and nothing read. Signed but without MessageSid, From or To: 400. Twilio does not
    retry, so the message is stored before the answer; a storage failure is the adapter's 503.
    """
    from gateway.providers import twilio_inbound

    gateway = get_gateway()
    message = _signed_by_twilio(call, twilio_inbound.read_inbound, "inbound message")
    outcome = gateway.inbound.receive(message)
    log.info("twilio inbound message %s: %s", brief(message.message_id, 40), outcome)
    return Document(twilio_inbound.EMPTY_TWIML, media_type=twilio_inbound.TWIML_MEDIA_TYPE)


def acs_events_delivery(call: Call) -> Document:
    """Event Grid's POST of ACS events: the key first, then the handshake or every report applied.

    Unset ``SMS_EVENTGRID_KEY`` answers as if the route did not exist. A body that is not an array, or an
    event that cannot be read, is a 400 (Event Grid does not retry it; the readable events are applied
    first); a storage failure leaves the adapter's 503, which Event Grid retries (applying is idempotent).
    """
    expected = get_settings().eventgrid_key
    if expected is None:
        raise not_found(f"No route matches POST /{call.route.path}; see /metadata")
    if not acs_events.key_matches(call.query.get(acs_events.KEY_PARAMETER), expected):
        raise ApiError(401, "Unauthorized", "The key query parameter is missing or is not SMS_EVENTGRID_KEY",
                       headers={"WWW-Authenticate": acs_events.KEY_CHALLENGE})
    if len(call.body) > acs_events.MAX_BATCH_BYTES:
        raise ApiError(413, "RequestEntityTooLarge",
                       f"An Event Grid delivery is at most {acs_events.MAX_BATCH_BYTES} bytes")
    try:
        events = acs_events.parse_batch(call.body)
    except acs_events.MalformedBatch as error:
        raise ApiError(400, "MalformedBatch", str(error)) from None
    result = acs_events.receive(events, lambda receipt: get_gateway().receipts.apply(receipt),
                                lambda message: get_gateway().inbound.receive(message))
    if result.problems:
        raise ApiError.validation([FieldError(f"[{position}]", "MalformedEvent", problem)
                                   for position, problem in result.problems])
    if result.validation_code is not None:
        return Document(acs_events.handshake_answer(result.validation_code))
    if (call.headers.get(acs_events.EVENT_TYPE_HEADER) or "").lower() == acs_events.VALIDATION_DELIVERY.lower():
        raise ApiError(400, "MalformedBatch", "A SubscriptionValidation delivery without a validation event")
    return Document(json.dumps(result.summary()))


def parse_dto(model: type[WireModel], data: dict[str, Any]) -> Any:
    """The DTO, or a 400 naming every offending field the way ServiceStack does."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ApiError.validation([_field_error(detail) for detail in error.errors()]) from None


def _field_error(detail: Mapping[str, Any]) -> FieldError:
    path = ""
    for part in detail.get("loc", ()):
        if isinstance(part, int):
            path += f"[{part}]"
        elif not str(part).startswith(("function-", "nullable[", "union[")) and not str(part)[0].islower():
            path += f".{part}" if path else str(part)
    message = str(detail.get("msg", "invalid value")).removeprefix("Value error, ")
    return FieldError(path or "Request", "SerializationException", f"'{path}': {message}")
