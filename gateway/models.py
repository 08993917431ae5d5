"""The wire contract's DTOs: what requests carry and what every response, errors included, holds.

Input is forgiving the way ServiceStack is: property names match case-insensitively and
unknown properties are ignored. It is strict where leniency would store what cannot be read
back: a Guid is one of the N, D, B and P forms in ASCII hex, and no string may hold a lone
UTF-16 surrogate. Output is PascalCase with Guids in N form and null properties omitted
(``to_wire``). Each field's description is what ``/metadata`` and ``/openapi.json`` show for it.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

EMPTY_GUID = uuid.UUID(int=0)
_HEX = "[0-9A-Fa-f]"  # ASCII only: not str.isdigit's other scripts, not int()'s 0x or underscores
_DASHED = f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
GUID_PATTERN = rf"^(?:{_HEX}{{32}}|{_DASHED}|\{{{_DASHED}\}}|\({_DASHED}\))$"
"""The forms ServiceStack reads a Guid in: N (32 hex digits), D (dashed 8-4-4-4-12), B ({D}) and P ((D))."""
_GUID = re.compile(GUID_PATTERN)
_WHITESPACE = " \t\r\n"  # what ServiceStack skips around a Guid (JsonUtils.IsWhiteSpace)
GUID_FORMS = "32 hex digits, optionally dashed 8-4-4-4-12, the dashed form optionally in {} or ()"


def parse_guid(value: Any) -> uuid.UUID | None:
    """A Guid in exactly ServiceStack's N, D, B or P form; the empty string means none.

    ``uuid.UUID`` alone is looser: it takes ``0x`` prefixes, other scripts' digits and hyphens
    anywhere, so a malformed id could pass as some other licensee's and answer 403 instead of 400.
    The message never repeats the value: it could hold anything, a lone surrogate included.
    """
    if value is None or isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a Guid")
    text = value.strip(_WHITESPACE)
    if text == "":
        return None
    if not _GUID.fullmatch(text):
        raise ValueError(f"is not a Guid: {GUID_FORMS}")
    return uuid.UUID(text.strip("{}()"))


Guid = Annotated[
    uuid.UUID | None,
    BeforeValidator(parse_guid),
    PlainSerializer(lambda value: value.hex if value is not None else None, return_type=str | None),
]


_WCF_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
"""ServiceStack's default JSON DateTime (its WCF-compatible form): milliseconds since 1970 UTC, maybe an offset."""


def parse_wire_datetime(value: Any) -> Any:
    """A DateTime as ServiceStack clients write one, made aware: ISO 8601 (JSV and most JSON clients) or
    ``/Date(ms±hhmm)/`` (ServiceStack.Text's default); a time without an offset is UTC, as ServiceStack on Azure
    reads it."""
    if isinstance(value, str):
        text = value.strip()
        match = _WCF_DATE.fullmatch(text)
        if match is not None:
            return datetime.fromtimestamp(int(match.group(1)) / 1000, UTC)
        value = text
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError:
            raise ValueError("is not a date and time: write ISO 8601, e.g. 2026-12-01T09:30:00Z or "
                             "2026-12-01T10:30:00+01:00") from None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    if value == "":
        return None
    return value


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


WireDateTime = Annotated[datetime | None, BeforeValidator(parse_wire_datetime), AfterValidator(_as_utc)]
"""A request's DateTime, in UTC: ISO 8601 with or without an offset (none: UTC), or ServiceStack's ``/Date(ms)/``."""


class WireModel(BaseModel):
    """A DTO: case-insensitive on the way in, PascalCase field names on the way out."""

    # defer_build: a model is compiled on first use, so the status DTOs cost a send-only cold start nothing.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _match_names_case_insensitively(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        by_lower = {name.lower(): name for name in cls.model_fields}
        matched: dict[str, Any] = {}
        for key, value in data.items():
            name = by_lower.get(str(key).lower())
            if name is not None:
                matched[name] = value
        return matched

    @field_validator("*", mode="after")
    @classmethod
    def _refuse_lone_surrogates(cls, value: Any) -> Any:
        """Every string of every DTO passes here, whatever wire format it came in.

        A lone surrogate (``\\ud800`` in JSON, or a codec's output) is not Unicode text: no
        provider can send it and no response could encode it, so it is a 400 here, not a
        communication stored and then never readable.
        """
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as error:
                raise ValueError(f"has an unpaired UTF-16 surrogate (U+{ord(value[error.start]):04X} at character "
                                 f"{error.start + 1}); send Unicode text") from None
        return value

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict ServiceStack would write: nulls omitted, Guids in N form."""
        return self.model_dump(mode="json", exclude_none=True)


class SMSContact(WireModel):
    """A sender or a recipient."""

    Name: str | None = Field(None, description="The contact's name, for people; at most 256 characters")
    PhoneNumber: str | None = Field(
        None,
        description="International (+ and country code), or national with SMS_DEFAULT_REGION; stored in E.164. "
                    "A sender may also be a short code or an alphanumeric id of up to 11 characters",
    )
    ContactId: Guid = Field(None, description="The caller's own id for the contact, kept and echoed back")


class SMSModel(WireModel):
    """The message: who sends it, to whom, and what it says."""

    From: SMSContact | None = Field(None, description="The sender; without a PhoneNumber, SMS_DEFAULT_SENDER sends")
    To: list[SMSContact | None] | None = Field(
        None,
        description="The recipients, at least one and at most SMS_MAX_RECIPIENTS; numbers that normalise to the "
                    "same E.164 number are sent once",
    )
    MessageBody: str | None = Field(None, description="The text to send: not empty, at most SMS_MAX_BODY_LENGTH "
                                                      "characters")
    ReplyIsAllowed: bool = Field(False, description="Whether the recipient may reply; stored and echoed back")
    ReplyIsRequired: bool = Field(False, description="Whether a reply is expected; stored and echoed back")
    Notes: str | None = Field(None, description="Free text for the caller, at most 4,000 characters; stored, not sent")
    LinkedObjectId: Guid = Field(None, description="The id of the caller's object this message belongs to")
    SuiteId: Guid = Field(None, description="The caller's suite id; stored and echoed back")
    LicenseeId: Guid = Field(
        None, description="The licensee the message is sent for: omitted, the empty Guid or the API key's own "
                          "licensee; any other answers 403",
    )


_SMSModel = SMSModel  # the field below shares the type's name, as in the ServiceStack DTO


class SMSSend(WireModel):
    """The request: one message to one or more recipients."""

    SMSModel: _SMSModel | None = Field(None, description="The message; required")
    CreateCommunicationReferencesImmediately: bool = Field(
        False, description="Write a row per recipient before answering, so each recipient's status exists when "
                           "the call returns; otherwise the worker writes them when it first delivers",
    )
    SendAt: WireDateTime = Field(
        None, description="Send at this time instead of now (ISO 8601, UTC or with an offset; ServiceStack's "
                          "/Date(ms)/ too): at most 35 days ahead; a time up to a minute past sends now. The "
                          "communication is Scheduled until then and can be canceled. Not on the /immediate routes",
    )
    ValidUntil: WireDateTime = Field(
        None, description="A recipient not yet sent by this time (ISO 8601, as SendAt) is not sent: it ends Expired. "
                          "Must be later than SendAt, or than now without it",
    )


class CommResponse(WireModel):
    """What a send answers: the communication's ids and whether it was accepted (or, immediate, sent)."""

    CommId: Guid = Field(None, description="The communication's id: GET /api/sms/{CommId} reads its status")
    Reference: str | None = Field(
        None, description="A short id, 10 letters and digits, unique per licensee: GET /api/sms/reference/{Reference}"
    )
    Status: bool = Field(
        False, description="Queued routes: true once accepted. Immediate routes: true when every recipient was sent"
    )
    Message: str | None = Field(None, description="What happened, for people: queued, or sent and failed counts; "
                                                  "then each recipient's message's encoding and segments")


class RecipientStatus(WireModel):
    """One recipient's delivery state: the per-recipient communication reference."""

    RecipientId: Guid = Field(None, description="The recipient's id within the communication")
    Name: str | None = Field(None, description="The recipient's name, as sent")
    PhoneNumber: str | None = Field(None, description="The recipient's number in E.164")
    ContactId: Guid = Field(None, description="The caller's id for the contact, as sent")
    Status: str | None = Field(
        None, description="Pending, Sending, Sent (the provider accepted it), Failed, OptedOut (on the licensee's "
                          "opt-out list, or refused by the provider as unsubscribed: never sent), Canceled (canceled "
                          "before it was handed to the provider) or Expired (still unsent at ValidUntil); then, from "
                          "the provider's delivery receipt, Delivered (the phone has it), Undelivered or Failed. Sent "
                          "with no receipt: none came"
    )
    ProviderMessageId: str | None = Field(None, description="The provider's id for the message, once sent")
    ErrorCode: str | None = Field(
        None, description="The provider's error code: of the delivery receipt when it gave one, else of the last "
                          "failed attempt"
    )
    ErrorMessage: str | None = Field(
        None, description="The provider's error message: of the delivery receipt when it gave one, else of the "
                          "last failed attempt"
    )
    Attempts: int = Field(0, description="How many times delivery to this recipient was attempted")
    UpdatedAt: datetime | None = Field(None, description="When this recipient's delivery state last changed (UTC)")
    ReceiptAt: datetime | None = Field(
        None, description="When the provider's delivery receipt that moved it last arrived (UTC): the one that set a "
                          "Delivered, Undelivered or Failed status, or a `sent` one, which leaves it Sent; empty "
                          "before one came"
    )
    Replied: bool | None = Field(
        None, description="For a communication with ReplyIsRequired: whether this recipient has replied; empty "
                          "otherwise"
    )
    Segments: int | None = Field(
        None, description="How many segments the provider says it sent this recipient's message in, when it reports "
                          "it; empty otherwise (the communication's Segments is the gateway's own count)"
    )


class Reply(WireModel):
    """A message a recipient sent back, attributed to this communication (docs/replies.md)."""

    RecipientId: Guid = Field(None, description="The recipient who replied (RecipientId in Recipients)")
    From: str | None = Field(None, description="The number it came from, in E.164: the recipient's")
    To: str | None = Field(None, description="The number it was sent to, in E.164: the communication's sender")
    Body: str | None = Field(None, description="The text, as received")
    ReceivedAt: datetime | None = Field(None, description="When the provider received it (UTC)")


class SMSStatusResponse(WireModel):
    """What GET /api/sms/{CommId} and /api/sms/reference/{Reference} answer."""

    CommId: Guid = Field(None, description="The communication's id")
    Reference: str | None = Field(None, description="The communication's short reference")
    LicenseeId: Guid = Field(None, description="The licensee it was sent for")
    Status: str | None = Field(
        None, description="Scheduled (waiting for SendAt), Queued, Sending, Sent, PartiallySent or Failed; Canceled "
                          "or Expired when nothing was sent and every recipient was canceled or expired; once every "
                          "recipient the provider accepted has a delivery receipt, Delivered, PartiallyDelivered or "
                          "Undelivered"
    )
    From: SMSContact | None = Field(None, description="The sender it was sent from")
    MessageBody: str | None = Field(None, description="The text sent (after smart encoding, when it replaced "
                                                      "characters)")
    Encoding: str | None = Field(None, description="GSM-7 or UCS-2: the alphabet the text is sent in "
                                                   "(docs/messages.md)")
    Segments: int = Field(0, description="How many segments (billed parts) each recipient's message takes")
    SmartEncoded: bool = Field(False, description="Whether look-alike characters (curly quotes, long dashes, odd "
                                                  "spaces…) were replaced by GSM-7 ones, so it is sent as GSM-7")
    ReplyIsAllowed: bool = Field(False, description="As the send said")
    ReplyIsRequired: bool = Field(False, description="As the send said")
    Notes: str | None = Field(None, description="As the send said")
    LinkedObjectId: Guid = Field(None, description="As the send said")
    SuiteId: Guid = Field(None, description="As the send said")
    RecipientCount: int = Field(0, description="How many recipients it has (after duplicates were removed)")
    SentCount: int = Field(0, description="How many recipients the provider accepted (whatever receipts said later)")
    FailedCount: int = Field(0, description="How many recipients were not sent: the provider refused them, or they "
                                            "are OptedOut")
    PendingCount: int = Field(0, description="How many recipients are not final yet (Pending or Sending)")
    DeliveredCount: int = Field(0, description="How many recipients a receipt says are Delivered")
    UndeliveredCount: int = Field(0, description="How many recipients a receipt says are Undelivered")
    CanceledCount: int = Field(0, description="How many recipients were canceled before they were sent (of "
                                              "FailedCount)")
    ExpiredCount: int = Field(0, description="How many recipients were still unsent at ValidUntil (of FailedCount)")
    SendAt: datetime | None = Field(None, description="When a scheduled send is (or was) due (UTC); empty: sent at "
                                                      "once")
    ValidUntil: datetime | None = Field(None, description="When recipients still unsent end Expired (UTC), as the "
                                                          "send said")
    ResentFrom: Guid = Field(None, description="The communication whose failed recipients this one resends")
    ResentAs: list[Guid] = Field([], description="The communications that resent this one's failed recipients, "
                                                 "oldest first")
    LastError: str | None = Field(None, description="The last delivery error, for people")
    CreatedAt: datetime | None = Field(None, description="When it was accepted (UTC)")
    UpdatedAt: datetime | None = Field(None, description="When its state last changed (UTC)")
    Recipients: list[RecipientStatus] = Field(
        [], description="Every recipient's state, in the order the send listed them"
    )
    Replies: list[Reply] = Field(
        [], description="The messages recipients sent back to its sender number within SMS_REPLY_WINDOW_HOURS of "
                        "it (and before a later send from the same licensee to them), oldest first; a message "
                        "several licensees could be answered by is shown to none"
    )


class SMSCancelResponse(WireModel):
    """What DELETE /api/sms/{CommId} answers: how many recipients the cancel stopped."""

    CommId: Guid = Field(None, description="The communication's id")
    Reference: str | None = Field(None, description="The communication's short reference")
    Status: str | None = Field(None, description="The communication's status after the cancel (as SMSStatus shows "
                                                 "it): Canceled when nothing had been sent")
    CanceledCount: int = Field(0, description="How many recipients this request canceled: every one not yet handed "
                                              "to the provider. Those already sent are unchanged")
    Message: str | None = Field(None, description="What happened, for people")


class HealthResponse(WireModel):
    """What GET /api/health answers with 200."""

    Status: Literal["Healthy"] = Field("Healthy", description="Always Healthy: an unhealthy gateway answers 503")
    Provider: str | None = Field(
        None, description="The SMS provider that delivers (SMS_PROVIDER): twilio, acs, or outbox, which sends nothing"
    )


class OptOutRequest(WireModel):
    """POST /api/optouts: a number the licensee's own systems say must not be sent to."""

    PhoneNumber: str | None = Field(
        None, description="International (+ and country code), or national with SMS_DEFAULT_REGION; stored in E.164"
    )


class OptOut(WireModel):
    """One number on the licensee's opt-out list: sends to it end OptedOut, with no provider call."""

    PhoneNumber: str | None = Field(None, description="The number in E.164")
    Reason: str | None = Field(
        None, description="Why: the keyword the recipient texted (STOP…), the provider's error code (21610), api or "
                          "operator"
    )
    Source: str | None = Field(None, description="Who said so: inbound, twilio, acs, api or cli")
    At: datetime | None = Field(None, description="When it was added (UTC)")


class OptOutsResponse(WireModel):
    """GET /api/optouts: the caller's licensee's opt-out list, in number order."""

    OptOuts: list[OptOut] = Field([], description="Every number on the list")


class SMSLogEntry(WireModel):
    """One communication in the message log: what it is and how far it got, without its recipients or its body."""

    CommId: Guid = Field(None, description="The communication's id: GET /api/sms/{CommId} reads it whole")
    Reference: str | None = Field(None, description="The communication's short reference")
    Status: str | None = Field(None, description="Its status now, as GET /api/sms/{CommId} shows it")
    CreatedAt: datetime | None = Field(None, description="When it was accepted (UTC): the log's order, newest first")
    SendAt: datetime | None = Field(None, description="A scheduled send's SendAt (UTC); empty otherwise")
    RecipientCount: int = Field(0, description="How many recipients it has")
    SentCount: int = Field(0, description="How many recipients the provider accepted")
    FailedCount: int = Field(0, description="How many recipients were not sent (failed, opted out, canceled, "
                                            "expired)")
    DeliveredCount: int = Field(0, description="How many recipients a delivery receipt said have it")
    UndeliveredCount: int = Field(0, description="How many recipients a delivery receipt said were not reached "
                                                 "(Undelivered, or Failed after the provider accepted it)")
    LinkedObjectId: Guid = Field(None, description="As the send said")
    SuiteId: Guid = Field(None, description="As the send said")
    Segments: int = Field(0, description="How many SMS segments its body takes per recipient, as GET "
                                         "/api/sms/{CommId} counts them")
    Encoding: str | None = Field(None, description="GSM-7 or UCS-2: the alphabet the text is sent in, as GET "
                                                  "/api/sms/{CommId} says")


class SMSLogResponse(WireModel):
    """GET /api/sms: a page of the caller's communications, newest first."""

    Results: list[SMSLogEntry] = Field([], description="This page's communications, newest first; a page may hold "
                                                       "fewer than Top (a Status filter) and still have a next one")
    ContinuationToken: str | None = Field(None, description="Pass it back as ContinuationToken for the next page; "
                                                            "empty on the last page")


class WebhookRequest(WireModel):
    """PUT /api/webhook: where the licensee's events are to be posted."""

    Url: str | None = Field(
        None, description="An absolute https URL (http only on a local gateway) whose host resolves to public "
                          "addresses only; at most 2,048 characters"
    )


class Webhook(WireModel):
    """The licensee's webhook: where its events are posted (the secret is shown only when it is made)."""

    Url: str | None = Field(None, description="The URL events are posted to")


class WebhookRegistration(WireModel):
    """PUT /api/webhook's answer: the URL and the new secret that signs every event from now on."""

    Url: str | None = Field(None, description="The URL events are posted to")
    Secret: str | None = Field(
        None, description="The signing secret (whsec_ and base64), shown only now: verify each event's "
                          "webhook-signature with it (Standard Webhooks). The secret it replaces keeps signing beside "
                          "it for 24 hours"
    )


class WebhookEventEntry(WireModel):
    """One webhook event the gateway stored for the licensee, and what became of sending it (docs/webhooks.md)."""

    Id: str | None = Field(None, description="The event's id: the webhook-id header, the same on every attempt")
    Type: str | None = Field(None, description="message.sent, message.delivered, message.undelivered, message.failed, "
                                               "message.opted_out, message.canceled, message.expired, message.reply "
                                               "or communication.completed")
    Status: str | None = Field(None, description="Pending (being sent or retried), Delivered or Failed (retries over)")
    Attempts: int = Field(0, description="Attempts so far")
    LastError: str | None = Field(None, description="What went wrong last: the endpoint's HTTP status or an error "
                                                    "class (Timeout, ConnectionError, RefusedUrl, NoEndpoint)")
    CommId: str | None = Field(None, description="The communication the event is about")
    CreatedAt: datetime | None = Field(None, description="When the event was stored (UTC)")
    LastAttemptAt: datetime | None = Field(None, description="When it was last sent (UTC)")
    FailedAt: datetime | None = Field(None, description="When its retries ended (UTC)")
    Body: str | None = Field(None, description="The JSON body sent: {type, timestamp, data}")


class WebhookEventsResponse(WireModel):
    """GET /api/webhook/events: the caller's licensee's webhook events with the status asked for, newest first."""

    Events: list[WebhookEventEntry] = Field([], description="At most 100 events, newest first")


class ResponseError(WireModel):
    """One offending field of a request, as ServiceStack's validation feature reports it."""

    ErrorCode: str = Field(description="What is wrong, e.g. NotEmpty, SerializationException")
    FieldName: str = Field(description="The field's path in the request, e.g. SMSModel.To[1].PhoneNumber")
    Message: str = Field(description="What is wrong, for people")


class ResponseStatus(WireModel):
    """ServiceStack's error description; for validation errors it repeats the first field error."""

    ErrorCode: str = Field(description="e.g. Unauthorized, Forbidden, NotFound, NotEmpty, ServiceUnavailable")
    Message: str = Field(description="What went wrong, for people")
    Errors: list[ResponseError] = Field(description="One entry per offending field; empty for other errors")
    Meta: dict[str, str] | None = Field(None, description="Extra facts, e.g. the CorrelationId of a 500 in the logs")


_ResponseStatus = ResponseStatus  # the field below shares the type's name, as in ServiceStack


class ErrorResponse(WireModel):
    """The body of every error response (4xx and 5xx)."""

    ResponseStatus: _ResponseStatus = Field(description="What went wrong")
