"""Validation of an SMSSend: what a request must say before anything is stored.

Errors are collected, not raised one by one, so a client sees every problem at once, each
with its field path (``SMSModel.To[1].PhoneNumber``) as ServiceStack's validation reports it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers

from gateway.errors import ApiError, FieldError
from gateway.models import SMSSend
from gateway.segments import count_segments
from gateway.settings import MAX_SCHEDULE_AHEAD, Settings
from gateway.smart_encoding import smart_encode
from gateway.storage import RecipientSpec, TooLargeToStore, utcnow

MAX_NAME_LENGTH = 256
MAX_NOTES_LENGTH = 4000
# Unicode's control characters (C0, DEL, C1) but tab, line feed and carriage return: nothing a person
# reads, some a provider refuses or a terminal obeys, and NUL ends a string in C.
CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
SHORT_CODE_SENDER = re.compile(r"^\d{3,8}$")
SEND_AT_GRACE = timedelta(minutes=1)  # a SendAt this little past sends now: the client's clock, or a slow request
NO_REPLIES = ("is an alphanumeric sender id: no reply, and no STOP, can reach it; send from a phone number or a "
              "short code")


# Where each property of the stored rows comes from in the request.
STORED_FROM = {
    "Body": "SMSModel.MessageBody",
    "Notes": "SMSModel.Notes",
    "SenderName": "SMSModel.From.Name",
    "Sender": "SMSModel.From.PhoneNumber",
    "Recipients": "SMSModel.To",
    "Name": "SMSModel.To",
}


@dataclass(frozen=True)
class ValidSend:
    """An SMSSend that passed validation, with numbers in E.164 and duplicates removed."""

    sender: str
    sender_name: str | None
    sender_contact_id: uuid.UUID | None
    recipients: list[RecipientSpec]
    body: str
    reply_is_allowed: bool
    reply_is_required: bool
    notes: str | None
    linked_object_id: uuid.UUID | None
    suite_id: uuid.UUID | None
    write_recipient_rows_now: bool
    send_at: datetime | None = None  # a scheduled send's time (UTC); None: now
    asked_send_at: datetime | None = None  # the SendAt the request named, also one just past (sent now)
    valid_until: datetime | None = None  # recipients unsent by then end Expired
    smart_encoded: bool = False  # ``body`` is the request's with look-alike characters replaced (smart encoding)


def normalise_number(raw: str, default_region: str | None) -> str | None:
    """E.164 for a number phonenumbers accepts as valid; None otherwise."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _number_hint(settings: Settings) -> str:
    if settings.default_region:
        return f"a valid phone number, international (+...) or national for {settings.default_region}"
    return "a valid phone number in international format (+ and country code)"


def validate_send(request: SMSSend, settings: Settings, *, immediate: bool = False,
                  now: datetime | None = None) -> ValidSend:
    """The send as it is stored, or a 400 listing every problem. ``immediate``: the route delivers inside the
    request, so it takes no SendAt."""
    errors: list[FieldError] = []
    model = request.SMSModel
    if model is None:
        raise ApiError.validation([FieldError("SMSModel", "NotNull", "'SMSModel' must not be empty.")])

    body, smart_encoded = _body(model.MessageBody, settings, errors)

    sender = _sender(model.From.PhoneNumber if model.From else None, settings, errors)
    if sender and model.ReplyIsRequired and not can_receive_replies(sender):
        named = "The sender" if model.From and (model.From.PhoneNumber or "").strip() else "The default sender"
        errors.append(FieldError("SMSModel.From.PhoneNumber", "ReplyNotPossible",
                                 f"'Reply Is Required' needs a sender that can be answered. {named} "
                                 f"'{sender}' {NO_REPLIES}."))
    if model.From:
        _check_text(model.From.Name, "SMSModel.From.Name", "Name", MAX_NAME_LENGTH, errors)
    _check_text(model.Notes, "SMSModel.Notes", "Notes", MAX_NOTES_LENGTH, errors)

    recipients = _recipients(model.To or [], settings, errors)
    send_at, valid_until = _timing(request, immediate, now or utcnow(), errors)
    if errors:
        raise ApiError.validation(errors)
    return ValidSend(
        sender=sender or "",
        sender_name=model.From.Name if model.From else None,
        sender_contact_id=model.From.ContactId if model.From else None,
        recipients=recipients,
        body=body,
        reply_is_allowed=model.ReplyIsAllowed,
        reply_is_required=model.ReplyIsRequired,
        notes=model.Notes,
        linked_object_id=model.LinkedObjectId,
        suite_id=model.SuiteId,
        write_recipient_rows_now=request.CreateCommunicationReferencesImmediately,
        send_at=send_at,
        asked_send_at=request.SendAt,
        valid_until=valid_until,
        smart_encoded=smart_encoded,
    )


def _timing(request: SMSSend, immediate: bool, now: datetime,
            errors: list[FieldError]) -> tuple[datetime | None, datetime | None]:
    """SendAt (None: now) and ValidUntil as stored. A SendAt up to ``SEND_AT_GRACE`` past is now, not a schedule;
    further past, or more than ``MAX_SCHEDULE_AHEAD`` ahead, is refused, and so is any SendAt on an immediate route."""
    send_at, valid_until = request.SendAt, request.ValidUntil
    if send_at is not None:
        if immediate:
            errors.append(FieldError("SendAt", "NotImmediate", "'Send At' cannot be used on the /immediate routes, "
                                     "which deliver inside the request; post a scheduled send to the queued route."))
            send_at = None
        elif send_at < now - SEND_AT_GRACE:
            errors.append(FieldError("SendAt", "InThePast", f"'Send At' {_shown(send_at)} is in the past; give a "
                                     "later time, or none to send now."))
            send_at = None
        elif send_at > now + MAX_SCHEDULE_AHEAD:
            errors.append(FieldError("SendAt", "TooFarAhead", f"'Send At' {_shown(send_at)} is more than "
                                     f"{MAX_SCHEDULE_AHEAD.days} days ahead; schedule it at most "
                                     f"{MAX_SCHEDULE_AHEAD.days} days ahead."))
            send_at = None
        elif send_at <= now:
            send_at = None  # just past: sent now, like a send without SendAt
    starts = send_at or now
    if valid_until is not None and valid_until <= starts:
        against = f"'Send At' {_shown(send_at)}" if send_at is not None else "now"
        errors.append(FieldError("ValidUntil", "NotAfterSendAt", f"'Valid Until' {_shown(valid_until)} must be later "
                                 f"than {against}."))
    return send_at, valid_until


def _shown(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _check_text(text: str | None, path: str, label: str, limit: int | None, errors: list[FieldError]) -> None:
    """Free text a person wrote: at most ``limit`` characters, and no control characters."""
    if not text:
        return
    if limit is not None and len(text) > limit:
        errors.append(FieldError(path, "MaximumLength", f"'{label}' must be {limit} characters or fewer."))
        return
    found = CONTROL_CHARACTER.search(text)
    if found:
        errors.append(FieldError(
            path, "InvalidCharacters",
            f"'{label}' must not contain control characters: U+{ord(found.group()):04X} at character "
            f"{found.start() + 1}. Tab, line feed and carriage return are allowed.",
        ))


def _body(raw: str | None, settings: Settings, errors: list[FieldError]) -> tuple[str, bool]:
    """The body as it will be sent, and whether smart encoding changed it; what is wrong with it goes to ``errors``."""
    body = raw or ""
    path = "SMSModel.MessageBody"
    if not body.strip():
        errors.append(FieldError(path, "NotEmpty", "'Message Body' must not be empty."))
        return body, False
    if len(body) > settings.max_body_length:
        errors.append(FieldError(
            path, "MaximumLength",
            f"'Message Body' must be {settings.max_body_length} characters or fewer. You entered {len(body)}.",
        ))
        return body, False
    found = len(errors)
    _check_text(body, path, "Message Body", None, errors)
    if len(errors) > found:
        return body, False
    replaced = smart_encode(body) if settings.smart_encoding else None
    body = body if replaced is None else replaced
    _check_segments(body, settings.max_segments, errors)
    return body, replaced is not None


def _check_segments(body: str, limit: int, errors: list[FieldError]) -> None:
    """At most ``limit`` segments (billed parts) per recipient, counted as the body is sent (after smart encoding)."""
    cost = count_segments(body)
    if cost.segments > limit:
        errors.append(FieldError(
            "SMSModel.MessageBody", "TooManySegments",
            f"'Message Body' must fit in {limit} segments or fewer. It takes {cost.segments} in {cost.encoding} "
            f"({cost.units} {cost.encoding.units}).",
        ))


def _sender(raw: str | None, settings: Settings, errors: list[FieldError]) -> str | None:
    path = "SMSModel.From.PhoneNumber"
    if raw is None or not raw.strip():
        if settings.default_sender:
            return settings.default_sender
        errors.append(
            FieldError(path, "NotEmpty", "'From Phone Number' must not be empty: no default sender is configured.")
        )
        return None
    text = raw.strip()
    if ALPHANUMERIC_SENDER.match(text) or SHORT_CODE_SENDER.match(text):
        return text
    number = normalise_number(text, settings.default_region)
    if number is None:
        errors.append(
            FieldError(
                path,
                "InvalidPhoneNumber",
                f"'{text}' is not {_number_hint(settings)}, a short code or an alphanumeric sender id.",
            )
        )
    return number


def can_receive_replies(sender: str) -> bool:
    """Whether a reply (or a STOP) can reach ``sender``: a phone number or a short code can be answered, a
    name cannot. An empty sender is a Twilio Messaging Service's pick, always a number."""
    return not ALPHANUMERIC_SENDER.match(sender.strip())


def _recipients(contacts: list, settings: Settings, errors: list[FieldError]) -> list[RecipientSpec]:
    if not contacts:
        errors.append(FieldError("SMSModel.To", "NotEmpty", "'To' must have at least one recipient."))
        return []
    if len(contacts) > settings.max_recipients:
        errors.append(
            FieldError(
                "SMSModel.To",
                "TooManyRecipients",
                f"'To' must have {settings.max_recipients} recipients or fewer. You gave {len(contacts)}.",
            )
        )
        return []
    seen: set[str] = set()
    recipients: list[RecipientSpec] = []
    for index, contact in enumerate(contacts):
        path = f"SMSModel.To[{index}]"
        if contact:
            _check_text(contact.Name, f"{path}.Name", "Name", MAX_NAME_LENGTH, errors)
        raw = (contact.PhoneNumber if contact else None) or ""
        if not raw.strip():
            errors.append(FieldError(f"{path}.PhoneNumber", "NotEmpty", "'Phone Number' must not be empty."))
            continue
        number = normalise_number(raw.strip(), settings.default_region)
        if number is None:
            errors.append(
                FieldError(
                    f"{path}.PhoneNumber", "InvalidPhoneNumber", f"'{raw.strip()}' is not {_number_hint(settings)}."
                )
            )
            continue
        if number in seen:
            continue
        seen.add(number)
        recipients.append(RecipientSpec(phone_number=number, name=contact.Name, contact_id=contact.ContactId))
    return recipients


def validate_number(raw: str | None, path: str, settings: Settings) -> str:
    """A single number (an opt-out's) in E.164, read as a recipient's is; a 400 naming ``path`` otherwise."""
    text = (raw or "").strip()
    if not text:
        raise ApiError.validation([FieldError(path, "NotEmpty", "'Phone Number' must not be empty.")])
    number = normalise_number(text, settings.default_region)
    if number is None:
        # The value is not repeated: it may be a number, and an error names no number (nor echoes a path's bytes).
        raise ApiError.validation([FieldError(path, "InvalidPhoneNumber",
                                              f"'Phone Number' is not {_number_hint(settings)}.")])
    return number


def too_large_to_store(error: TooLargeToStore) -> ApiError:
    """A send whose rows Table Storage would refuse: the same on every retry, so a 400 naming the
    field that filled the row, never a 503 that tells the client to try again."""
    path = STORED_FROM.get(error.property_name, "SMSModel")
    return ApiError.validation([FieldError(path, "TooLargeToStore", f"'{path}' is too large to store: {error}. "
                                           "Send fewer or shorter values.")])
