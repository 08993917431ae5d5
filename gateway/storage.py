"""Communications in Table Storage: one partition per communication.

Layout (docs/storage.md has the reasoning):
- PartitionKey = CommId (N form); RowKey ``comm`` holds the communication, with the
  request snapshot (recipient list in JSON chunks) so delivery can always rebuild its rows;
- RowKey ``r00000``… one row per recipient (the "communication reference"), each with its
  own RecipientId, delivery status, provider message id and error;
- RowKey ``s00000``… one row per recipient that a provider's delivery receipt reached: what receipts said
  (``gateway/receipts.py``), apart from the recipient row so delivery's writes and receipts' never meet.
- RowKey ``w<hash>``… one row per state change whose webhook events are not yet published
  (``gateway/webhook_publish.py``), written in the change's own transaction and deleted once they are.
- RowKey ``y<provider>-<message id>``… one row per reply a recipient sent to this communication
  (``gateway/inbound.py``), after every other row.
- CommId is derived from (LicenseeId, Reference) with uuid5, so a lookup by Reference is a
  point read and an accepted Reference is unique per licensee by construction: the insert
  of the ``comm`` row fails if that pair was ever used.
"""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceResponseError
from azure.data.tables import TableServiceClient, TableTransactionError, UpdateMode

from gateway.connections import TableStore
from gateway.message_index import key_of

if TYPE_CHECKING:
    from gateway.listing import Listing
    from gateway.open_work import OpenWork

HEADER_ROW = "comm"
CLAIM_ROW = "idempotency"  # sorts between the header and the recipient rows
RECIPIENT_ROW_PREFIX = "r"
RECEIPT_ROW_PREFIX = "s"  # sorts after every recipient row: a RowKey range of recipients never reads one
MARK_ROW_PREFIX = "w"  # after the receipt rows too: no query of recipients or receipts reads a mark
REPLY_ROW_PREFIX = "y"  # sorts after the receipt rows: no query of recipients or receipts reads a reply
TRANSACTION_LIMIT = 100
RECIPIENTS_PROPERTY = "Recipients"  # the header's recipient list: Recipients0, Recipients1, ...
MAX_PROPERTY_UNITS = 32 * 1024
"""A string property holds 64 KiB of UTF-16: 32,768 code units, where a character outside the BMP
(an emoji) is two. Counting characters instead let a list of emoji names overflow a property."""
MAX_ENTITY_BYTES = 1024 * 1024 - 1024
"""An entity holds 1 MiB as ``entity_bytes`` counts it (the documented formula), less 1 KiB: the
service has been measured refusing entities a few bytes short of that count's 1 MiB."""
COMM_ID_NAMESPACE = uuid.UUID("6f1c1a52-3a4e-4c55-9a0e-8d0c4b7a51e2")
RESENT_AS_PROPERTY = "ResentAs"
LINK_ATTEMPTS = 10  # header races a resend's link survives before giving up (receipts merge on the ETag too)


class CommStatus(enum.StrEnum):
    SCHEDULED = "Scheduled"  # waits for its SendAt (docs/messages.md, "Scheduled sends")
    QUEUED = "Queued"
    SENDING = "Sending"
    SENT = "Sent"
    PARTIALLY_SENT = "PartiallySent"
    FAILED = "Failed"
    # Once every recipient the provider accepted has a final receipt (docs/delivery.md, "Receipts"):
    DELIVERED = "Delivered"  # every recipient's phone has it
    PARTIALLY_DELIVERED = "PartiallyDelivered"  # some have it; the others failed or were not delivered
    UNDELIVERED = "Undelivered"  # accepted by the provider, but no phone has it
    # Nothing was sent, and every recipient ended so for the same reason:
    CANCELED = "Canceled"  # DELETE /api/sms/{CommId} before any was handed to the provider
    EXPIRED = "Expired"  # its ValidUntil passed before any was sent

    @property
    def is_final(self) -> bool:
        """Delivery is done: nothing is left to send (receipts may still move it to a receipt status)."""
        return self not in {CommStatus.SCHEDULED, CommStatus.QUEUED, CommStatus.SENDING}


class RecipientState(enum.StrEnum):
    PENDING = "Pending"
    SENDING = "Sending"
    SENT = "Sent"
    FAILED = "Failed"
    OPTED_OUT = "OptedOut"  # on the licensee's opt-out list (``gateway/optouts.py``): never sent; counted as failed
    CANCELED = "Canceled"  # canceled before it was handed to the provider: never sent; counted as failed
    EXPIRED = "Expired"  # still unsent when the communication's ValidUntil passed: never sent; counted as failed
    # Shown from a receipt (``gateway/receipts.py``); a recipient row itself holds only the seven above.
    DELIVERED = "Delivered"
    UNDELIVERED = "Undelivered"

    @property
    def is_final(self) -> bool:
        return self not in {RecipientState.PENDING, RecipientState.SENDING}


class ReferenceTaken(Exception):
    """The (licensee, reference) pair already exists; pick another reference."""


class ConcurrentUpdate(Exception):
    """Another worker changed the rows first; this attempt must step back."""


class TooLargeToStore(ValueError):
    """A row Table Storage would refuse, on every retry: a string property or the whole entity over its limit.

    ``property_name`` says what is too large (``Recipients`` for the recipient list's chunks), so
    the caller can name the request field that filled it.
    """

    def __init__(self, property_name: str, message: str) -> None:
        super().__init__(message)
        self.property_name = property_name


class AcceptOutcomeUnknown(Exception):
    """The transaction that writes the ``comm`` row went out and no answer came back: it may have happened."""


def comm_id_for(licensee_id: uuid.UUID, reference: str) -> uuid.UUID:
    return uuid.uuid5(COMM_ID_NAMESPACE, f"{licensee_id.hex}/{reference.upper()}")


def recipient_id_for(comm_id: uuid.UUID, index: int) -> uuid.UUID:
    """Stable per (communication, position): whoever creates the row, the id is the same."""
    return uuid.uuid5(comm_id, f"recipient/{index}")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RecipientSpec:
    """A recipient as accepted: normalised number plus what the client said about it."""

    phone_number: str
    name: str | None = None
    contact_id: uuid.UUID | None = None


@dataclass
class Recipient:
    index: int
    recipient_id: uuid.UUID
    phone_number: str
    name: str | None = None
    contact_id: uuid.UUID | None = None
    status: RecipientState = RecipientState.PENDING
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    claimed_at: datetime | None = None
    first_attempt_at: datetime | None = None
    updated_at: datetime | None = None
    segments: int | None = None  # the provider's own count of the parts it sent, when it reports one
    etag: str | None = None  # None: the row does not exist yet

    @property
    def row_key(self) -> str:
        return _row_key(self.index)


def _row_key(index: int) -> str:
    return f"{RECIPIENT_ROW_PREFIX}{index:05d}"


class RecipientCounts(NamedTuple):
    sent: int
    failed: int  # not sent, for good: Failed, OptedOut, Canceled or Expired
    pending: int  # not final yet: Pending or Sending


NOT_SENT = frozenset({RecipientState.FAILED, RecipientState.OPTED_OUT, RecipientState.CANCELED,
                      RecipientState.EXPIRED})
"""The final states of a recipient row the provider never accepted: ``failed`` in the counts."""


def count_recipients(recipients: Iterable[Recipient]) -> RecipientCounts:
    """How many recipients are Sent, not sent (Failed, OptedOut, Canceled, Expired) and still open: delivery records
    it, the status shows it."""
    return count_states([recipient.status for recipient in recipients])


def count_states(states: Sequence[str]) -> RecipientCounts:
    """``count_recipients`` of recipient rows' states as stored (``RecipientState`` values)."""
    sent = states.count(RecipientState.SENT)
    failed = sum(states.count(state) for state in NOT_SENT)
    return RecipientCounts(sent, failed, len(states) - sent - failed)


def unsent_status(states: Iterable[str]) -> CommStatus:
    """What a communication nothing was sent of ends as: Canceled or Expired when every recipient ended so, else
    Failed (``aggregate_status``'s ``unsent``)."""
    ended = set(states)
    if ended == {RecipientState.CANCELED}:
        return CommStatus.CANCELED
    if ended == {RecipientState.EXPIRED}:
        return CommStatus.EXPIRED
    return CommStatus.FAILED


class ReceiptCounts(NamedTuple):
    """How many recipients a final receipt reached, by what it said; the header keeps them (receipts add to them)."""

    delivered: int = 0
    undelivered: int = 0
    failed: int = 0  # the provider accepted it, then said it could not send it

    @property
    def final(self) -> int:
        return self.delivered + self.undelivered + self.failed


NO_RECEIPTS = ReceiptCounts()
RECEIPT_COUNT_PROPERTIES = ("DeliveredCount", "UndeliveredCount", "ReceiptFailedCount")  # ReceiptCounts' order


def receipt_counts_of(entity: Any) -> ReceiptCounts:
    return ReceiptCounts(*(int(entity.get(name) or 0) for name in RECEIPT_COUNT_PROPERTIES))


def aggregate_status(sent: int, failed: int, pending: int, *, unsent: CommStatus = CommStatus.FAILED) -> CommStatus:
    """The status delivery's counts alone give; receipts may take a final one further (``receipts.overall_status``).

    ``unsent`` is what it ends as when nothing was sent (``unsent_status``: Canceled, Expired or Failed).
    """
    if pending:
        return CommStatus.SENDING
    if failed == 0:
        return CommStatus.SENT
    return unsent if sent == 0 else CommStatus.PARTIALLY_SENT


@dataclass(frozen=True)
class Tally:
    """A communication's header counts as stored (with its ETag) beside what its recipient rows say."""

    status: CommStatus
    sent_count: int
    failed_count: int
    etag: str | None
    rows: RecipientCounts
    receipts: ReceiptCounts = NO_RECEIPTS  # as the header counts them
    unsent: CommStatus = CommStatus.FAILED  # ``unsent_status`` of the rows: what it ends as if none was sent
    marks: int = 0  # webhook marks in the partition: changes whose events are not published yet


@dataclass(frozen=True)
class HeaderCounts:
    """The header's status and every count, with its ETag: what a receipt needs to move the communication."""

    status: CommStatus
    recipient_count: int
    sent_count: int
    failed_count: int
    receipts: ReceiptCounts
    etag: str | None

    @property
    def pending(self) -> int:
        return self.recipient_count - self.sent_count - self.failed_count


@dataclass
class ReceiptRecord:
    """A recipient's receipt row (``s00000``): what the provider's receipts said about its message.

    ``state`` is the furthest ``ReceiptState`` value receipts moved it to (None: only statuses that are not
    shown came); ``seen`` every provider status recorded, lower case, so a repeat is known; the error, the
    arrival (``receipt_at``) and the provider's time (``occurred_at``) are those of the receipt that set
    ``state``.
    """

    index: int
    message_id: str
    provider: str
    state: str | None = None
    seen: tuple[str, ...] = ()
    error_code: str | None = None
    error_message: str | None = None
    receipt_at: datetime | None = None
    occurred_at: datetime | None = None
    updated_at: datetime | None = None  # the last receipt's arrival, whatever it changed
    segments: int | None = None  # the parts a receipt said the message was sent in (ACS's delivery attempts)
    etag: str | None = None  # None: the row does not exist yet

    @property
    def row_key(self) -> str:
        return receipt_row_key(self.index)


def receipt_row_key(index: int) -> str:
    return f"{RECEIPT_ROW_PREFIX}{index:05d}"


@dataclass(frozen=True)
class ReceiptView:
    """What applying one receipt reads, in one query: the header's counts, the recipient row, the receipt row."""

    header: HeaderCounts
    recipient_status: RecipientState | None  # None: delivery has not written the recipient's row yet
    provider_message_id: str | None
    receipt: ReceiptRecord | None
    communication: Communication | None = None  # the header in full, when asked for: what a receipt's event carries


@dataclass(frozen=True)
class ReplyRecord:
    """A message a recipient sent back, attributed to this communication (``gateway/inbound.py``)."""

    provider: str
    message_id: str
    index: int  # the recipient who replied
    sender: str  # their number, E.164
    to: str  # our number
    body: str
    received_at: datetime

    @property
    def row_key(self) -> str:
        return reply_row_key(self.provider, self.message_id)


def reply_row_key(provider: str, message_id: str) -> str:
    return f"{REPLY_ROW_PREFIX}{provider}-{key_of(message_id)}"


@dataclass(frozen=True)
class EventMark:
    """A state change whose webhook events are not yet published: the ids of its events and when it happened.

    Written in the same transaction as the change (``mark=`` of the writes below), deleted once the events are
    published; the sweep publishes what a mark left behind lists (``gateway/webhook_publish.py``). A ``listed``
    mark lives in the open-work index instead (``gateway/open_work.py``), written before the change: a change to a
    communication that may be final already (a receipt, a reply), which no open-work row of its own covers.
    """

    comm_id: uuid.UUID
    event_ids: tuple[str, ...]
    changed_at: datetime
    listed: bool = False

    @property
    def row_key(self) -> str:
        digest = hashlib.sha256(" ".join(sorted(self.event_ids)).encode()).hexdigest()[:32]
        return f"{MARK_ROW_PREFIX}{digest}"  # the same change again writes the same row


@dataclass(frozen=True)
class KeyClaim:
    """An Idempotency-Key's row in its communication's partition (``gateway.idempotency``)."""

    key: str
    request_hash: str
    created_at: datetime  # the key's first accept: its window starts here
    started_at: datetime  # the latest accept that took it on (one cut off is taken over after a lease)
    etag: str | None = None  # None: the row is not written yet


@dataclass
class Communication:
    comm_id: uuid.UUID
    licensee_id: uuid.UUID
    reference: str
    sender: str
    body: str
    recipients_spec: list[RecipientSpec]
    status: CommStatus = CommStatus.QUEUED
    sender_name: str | None = None
    sender_contact_id: uuid.UUID | None = None
    reply_is_allowed: bool = False
    reply_is_required: bool = False
    notes: str | None = None
    linked_object_id: uuid.UUID | None = None
    suite_id: uuid.UUID | None = None
    recipient_rows_written: bool = False
    sent_count: int = 0
    failed_count: int = 0
    receipt_counts: ReceiptCounts = NO_RECEIPTS  # written by receipts only, never by delivery
    last_error: str | None = None
    sweeps: int = 0
    next_run_at: datetime | None = None  # when a delayed queue message brings it back (the sweep waits for it)
    send_at: datetime | None = None  # a scheduled send: Scheduled until then (docs/messages.md)
    valid_until: datetime | None = None  # a recipient still unsent then ends Expired
    smart_encoded: bool = False  # look-alike characters in the body were replaced by GSM-7 ones (``smart_encoding``)
    resent_from: uuid.UUID | None = None  # the communication whose failed recipients this one resends
    resent_as: tuple[uuid.UUID, ...] = ()  # the communications that resent this one's failed recipients, oldest first
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    etag: str | None = None

    def planned_recipients(self) -> list[Recipient]:
        """The per-recipient rows this communication owns, as they are before any delivery."""
        return [
            Recipient(
                index=index,
                recipient_id=recipient_id_for(self.comm_id, index),
                phone_number=spec.phone_number,
                name=spec.name,
                contact_id=spec.contact_id,
            )
            for index, spec in enumerate(self.recipients_spec)
        ]


@dataclass
class Snapshot:
    """A communication and its recipient rows as read in one partition query."""

    communication: Communication
    stored_recipients: list[Recipient]  # only the rows that exist: none before delivery, unless written at accept
    receipts: dict[int, ReceiptRecord] = field(default_factory=dict)  # by index; read only when the whole partition is
    replies: list[ReplyRecord] = field(default_factory=list)  # oldest first; read only when the whole partition is

    def all_recipients(self) -> list[Recipient]:
        """Every recipient, in order: the stored rows, and the planned ones the worker has not created yet."""
        stored = {recipient.index: recipient for recipient in self.stored_recipients}
        return [stored.get(planned.index, planned) for planned in self.communication.planned_recipients()]


def _hex(value: uuid.UUID | None) -> str | None:
    return value.hex if value is not None else None


def _uuid(value: Any) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


def _without_none(entity: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entity.items() if value is not None}


def utf16_units(text: str) -> int:
    """The length Table Storage measures a string in: UTF-16 code units, two for a character beyond U+FFFF."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def entity_bytes(entity: dict[str, Any]) -> int:
    """An entity's size as Table Storage counts it: 4 bytes, both keys in UTF-16, and for each other
    property 8 bytes, its name in UTF-16 and its value (a string: 4 bytes plus its UTF-16)."""
    size = 4 + 2 * (utf16_units(entity["PartitionKey"]) + utf16_units(entity["RowKey"]))
    for name, value in entity.items():
        if name not in ("PartitionKey", "RowKey"):
            size += 8 + 2 * utf16_units(name) + _value_bytes(value)
    return size


def _value_bytes(value: Any) -> int:
    if isinstance(value, str):
        return 4 + 2 * utf16_units(value)
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return 4 if -(2**31) <= value < 2**31 else 8
    if isinstance(value, float | datetime):
        return 8
    raise TypeError(f"no stored size for a {type(value).__name__}")


def check_fits(entity: dict[str, Any]) -> None:
    """Raise TooLargeToStore unless the service would take the entity: every string property and the whole."""
    for name, value in entity.items():
        if isinstance(value, str) and utf16_units(value) > MAX_PROPERTY_UNITS:
            raise TooLargeToStore(_property_of(name), f"{name} would be {utf16_units(value)} UTF-16 code units; "
                                  f"a property holds at most {MAX_PROPERTY_UNITS}")
    size = entity_bytes(entity)
    if size > MAX_ENTITY_BYTES:
        grouped: dict[str, int] = {}
        for name, value in entity.items():
            if isinstance(value, str) and name not in ("PartitionKey", "RowKey"):
                grouped[_property_of(name)] = grouped.get(_property_of(name), 0) + utf16_units(value)
        largest = max(grouped, key=grouped.__getitem__)
        raise TooLargeToStore(largest, f"the row would be {size} bytes, {largest} the largest part; "
                              f"a row holds at most {MAX_ENTITY_BYTES}")


def _property_of(name: str) -> str:
    """``Recipients3`` -> ``Recipients``: the chunks of one value are one property to the caller."""
    suffix = name.removeprefix(RECIPIENTS_PROPERTY)
    return RECIPIENTS_PROPERTY if suffix != name and suffix.isdigit() else name


def _chunks(text: str) -> dict[str, str]:
    """The recipient list over as many properties as it needs, each at most MAX_PROPERTY_UNITS long,
    never cut between the two halves of a surrogate pair."""
    data = text.encode("utf-16-le", "surrogatepass")
    parts: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + 2 * MAX_PROPERTY_UNITS, len(data))
        if end < len(data) and 0xD8 <= data[end - 1] <= 0xDB:  # the last unit is a pair's first half
            end -= 2
        parts.append(data[start:end].decode("utf-16-le", "surrogatepass"))
        start = end
    return {f"{RECIPIENTS_PROPERTY}{n}": part for n, part in enumerate(parts or [""])}


def _unchunk(entity: dict[str, Any]) -> str:
    parts = []
    while (part := entity.get(f"{RECIPIENTS_PROPERTY}{len(parts)}")) is not None:
        parts.append(part)
    return "".join(parts)


def communication_entity(comm: Communication) -> dict[str, Any]:
    recipients = json.dumps(
        [[spec.phone_number, spec.name, _hex(spec.contact_id)] for spec in comm.recipients_spec],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    entity = {
        "PartitionKey": comm.comm_id.hex,
        "RowKey": HEADER_ROW,
        "LicenseeId": comm.licensee_id.hex,
        "Reference": comm.reference,
        "Status": comm.status.value,
        "Sender": comm.sender,
        "SenderName": comm.sender_name,
        "SenderContactId": _hex(comm.sender_contact_id),
        "Body": comm.body,
        "ReplyIsAllowed": comm.reply_is_allowed,
        "ReplyIsRequired": comm.reply_is_required,
        "Notes": comm.notes,
        "LinkedObjectId": _hex(comm.linked_object_id),
        "SuiteId": _hex(comm.suite_id),
        "RecipientCount": len(comm.recipients_spec),
        "RecipientRowsWritten": comm.recipient_rows_written,
        "SentCount": comm.sent_count,
        "FailedCount": comm.failed_count,
        "LastError": comm.last_error,
        "SendAt": comm.send_at,
        "ValidUntil": comm.valid_until,
        "SmartEncoded": comm.smart_encoded or None,
        "ResentFrom": _hex(comm.resent_from),
        "ResentAs": " ".join(each.hex for each in comm.resent_as) or None,
        "CreatedAt": comm.created_at,
        "UpdatedAt": comm.updated_at,
        **_chunks(recipients),
    }
    return _without_none(entity)


def communication_from_entity(entity: dict[str, Any]) -> Communication:
    specs = [
        RecipientSpec(phone_number=phone, name=name, contact_id=_uuid(contact))
        for phone, name, contact in json.loads(_unchunk(entity) or "[]")
    ]
    return Communication(
        comm_id=uuid.UUID(entity["PartitionKey"]),
        licensee_id=uuid.UUID(entity["LicenseeId"]),
        reference=entity["Reference"],
        sender=entity["Sender"],
        body=entity["Body"],
        recipients_spec=specs,
        status=CommStatus(entity["Status"]),
        sender_name=entity.get("SenderName"),
        sender_contact_id=_uuid(entity.get("SenderContactId")),
        reply_is_allowed=bool(entity.get("ReplyIsAllowed", False)),
        reply_is_required=bool(entity.get("ReplyIsRequired", False)),
        notes=entity.get("Notes"),
        linked_object_id=_uuid(entity.get("LinkedObjectId")),
        suite_id=_uuid(entity.get("SuiteId")),
        recipient_rows_written=bool(entity.get("RecipientRowsWritten", False)),
        sent_count=int(entity.get("SentCount", 0)),
        failed_count=int(entity.get("FailedCount", 0)),
        receipt_counts=receipt_counts_of(entity),
        last_error=entity.get("LastError") or None,
        sweeps=int(entity.get("Sweeps", 0)),
        next_run_at=entity.get("NextRunAt"),
        send_at=entity.get("SendAt"),
        valid_until=entity.get("ValidUntil"),
        smart_encoded=bool(entity.get("SmartEncoded", False)),
        resent_from=_uuid(entity.get("ResentFrom")),
        resent_as=tuple(uuid.UUID(each) for each in (entity.get("ResentAs") or "").split()),
        created_at=entity.get("CreatedAt") or utcnow(),
        updated_at=entity.get("UpdatedAt") or utcnow(),
        etag=entity.metadata.get("etag") if hasattr(entity, "metadata") else None,
    )


def recipient_entity(comm_id: uuid.UUID, recipient: Recipient) -> dict[str, Any]:
    return _without_none(
        {
            "PartitionKey": comm_id.hex,
            "RowKey": recipient.row_key,
            "RecipientId": recipient.recipient_id.hex,
            "PhoneNumber": recipient.phone_number,
            "Name": recipient.name,
            "ContactId": _hex(recipient.contact_id),
            "Status": recipient.status.value,
            "ProviderMessageId": recipient.provider_message_id,
            "ErrorCode": recipient.error_code,
            "ErrorMessage": recipient.error_message,
            "Attempts": recipient.attempts,
            "ClaimedAt": recipient.claimed_at,
            "FirstAttemptAt": recipient.first_attempt_at,
            "UpdatedAt": recipient.updated_at,
            "Segments": recipient.segments,
        }
    )


def recipient_from_entity(entity: dict[str, Any]) -> Recipient:
    return Recipient(
        index=int(entity["RowKey"][len(RECIPIENT_ROW_PREFIX) :]),
        recipient_id=uuid.UUID(entity["RecipientId"]),
        phone_number=entity["PhoneNumber"],
        name=entity.get("Name"),
        contact_id=_uuid(entity.get("ContactId")),
        status=RecipientState(entity["Status"]),
        provider_message_id=entity.get("ProviderMessageId"),
        error_code=entity.get("ErrorCode"),
        error_message=entity.get("ErrorMessage"),
        attempts=int(entity.get("Attempts", 0)),
        claimed_at=entity.get("ClaimedAt"),
        first_attempt_at=entity.get("FirstAttemptAt"),
        updated_at=entity.get("UpdatedAt"),
        segments=entity.get("Segments"),
        etag=entity.metadata.get("etag"),
    )


def claim_entity(comm_id: uuid.UUID, claim: KeyClaim) -> dict[str, Any]:
    return {
        "PartitionKey": comm_id.hex,
        "RowKey": CLAIM_ROW,
        "IdempotencyKey": claim.key,
        "RequestHash": claim.request_hash,
        "CreatedAt": claim.created_at,
        "StartedAt": claim.started_at,
    }


def claim_from_entity(entity: Any) -> KeyClaim:
    return KeyClaim(
        key=entity["IdempotencyKey"],
        request_hash=entity["RequestHash"],
        created_at=entity["CreatedAt"],
        started_at=entity["StartedAt"],
        etag=entity.metadata.get("etag"),
    )


def receipt_entity(comm_id: uuid.UUID, record: ReceiptRecord) -> dict[str, Any]:
    return _without_none(
        {
            "PartitionKey": comm_id.hex,
            "RowKey": record.row_key,
            "MessageId": record.message_id,
            "Provider": record.provider,
            "State": record.state,
            "Seen": " ".join(record.seen),
            "ErrorCode": record.error_code,
            "ErrorMessage": record.error_message,
            "ReceiptAt": record.receipt_at,
            "OccurredAt": record.occurred_at,
            "UpdatedAt": record.updated_at,
            "Segments": record.segments,
        }
    )


def receipt_from_entity(entity: Any) -> ReceiptRecord:
    return ReceiptRecord(
        index=int(entity["RowKey"][len(RECEIPT_ROW_PREFIX) :]),
        message_id=entity.get("MessageId") or "",
        provider=entity.get("Provider") or "",
        state=entity.get("State") or None,
        seen=tuple((entity.get("Seen") or "").split()),
        error_code=entity.get("ErrorCode"),
        error_message=entity.get("ErrorMessage"),
        receipt_at=entity.get("ReceiptAt"),
        occurred_at=entity.get("OccurredAt"),
        updated_at=entity.get("UpdatedAt"),
        segments=entity.get("Segments"),
        etag=entity.metadata.get("etag"),
    )


def reply_entity(comm_id: uuid.UUID, reply: ReplyRecord) -> dict[str, Any]:
    return {"PartitionKey": comm_id.hex, "RowKey": reply.row_key, "Provider": reply.provider,
            "MessageId": reply.message_id, "Index": reply.index, "From": reply.sender, "To": reply.to,
            "Body": reply.body, "ReceivedAt": reply.received_at}


def reply_from_entity(entity: Any) -> ReplyRecord:
    return ReplyRecord(provider=entity["Provider"], message_id=entity["MessageId"], index=int(entity["Index"]),
                       sender=entity["From"], to=entity["To"], body=entity.get("Body") or "",
                       received_at=entity["ReceivedAt"])


def mark_entity(mark: EventMark) -> dict[str, Any]:
    return {"PartitionKey": mark.comm_id.hex, "RowKey": mark.row_key, "EventIds": " ".join(mark.event_ids),
            "ChangedAt": mark.changed_at}


def mark_from_entity(entity: Any) -> EventMark:
    return EventMark(comm_id=uuid.UUID(entity["PartitionKey"]), event_ids=tuple(entity["EventIds"].split()),
                     changed_at=entity["ChangedAt"])


def _mark_operations(mark: EventMark | None) -> list[Any]:
    """The upsert that writes ``mark`` beside a change, in the change's transaction (none without a mark, or for
    a mark listed in the open-work index instead)."""
    return [] if mark is None or mark.listed else [("upsert", mark_entity(mark), {"mode": UpdateMode.REPLACE})]


def header_counts_of(entity: Any) -> HeaderCounts:
    return HeaderCounts(status=CommStatus(entity["Status"]), recipient_count=int(entity.get("RecipientCount") or 0),
                        sent_count=int(entity.get("SentCount") or 0), failed_count=int(entity.get("FailedCount") or 0),
                        receipts=receipt_counts_of(entity), etag=entity.metadata.get("etag"))


_MARK_RANGE = {"first": MARK_ROW_PREFIX, "stop": chr(ord(MARK_ROW_PREFIX) + 1)}  # a partition's marks: RowKey w...
HEADER_COUNT_COLUMNS = ["RowKey", "Status", "RecipientCount", "SentCount", "FailedCount", *RECEIPT_COUNT_PROPERTIES]


def _recipient_operation(comm_id: uuid.UUID, recipient: Recipient, *, upsert: bool) -> tuple[Any, ...]:
    if upsert:
        return ("upsert", recipient_entity(comm_id, recipient), {"mode": UpdateMode.REPLACE})
    return ("create", recipient_entity(comm_id, recipient))


def _claim_operation(comm_id: uuid.UUID, claim: KeyClaim) -> tuple[Any, ...]:
    """Insert a new claim; replace a cut-off one only if nobody took it over since it was read."""
    if claim.etag is None:
        return ("create", claim_entity(comm_id, claim))
    conditional = {"mode": UpdateMode.REPLACE, "etag": claim.etag, "match_condition": MatchConditions.IfNotModified}
    return ("update", claim_entity(comm_id, claim), conditional)


def _batches(operations: Sequence[Any], size: int = TRANSACTION_LIMIT) -> Iterable[Sequence[Any]]:
    for start in range(0, len(operations), size):
        yield operations[start : start + size]


class CommunicationStore(TableStore):
    """Reads and writes communications; every multi-row write is an entity-group transaction.

    With a ``listing`` (``gateway/listing.py``) every communication accepted is listed in the open-work index, the
    message log and (scheduled) the schedule index before its header is written; with ``open_work`` alone, in that
    index alone. ``finish`` takes it off the open-work index.
    """

    def __init__(self, service: TableServiceClient, table_name: str, open_work: OpenWork | None = None, *,
                 listing: Listing | None = None) -> None:
        super().__init__(service, table_name)
        self.open_work = listing.open_work if listing is not None else open_work
        self.listing = listing

    def create(self, comm: Communication, recipients: Sequence[Recipient] = (), *,
               claim: KeyClaim | None = None) -> None:
        """Store an accepted communication, with its recipient rows when given.

        The header goes in the LAST transaction: until it exists the communication was not
        accepted, and no reader or worker sees recipient rows without it (docs/storage.md).
        With an idempotency ``claim`` its row goes in the FIRST, inserted (or, when taking over
        a cut-off accept, replaced on its ETag), so only one request at a time writes the
        partition's recipient rows, and they are upserts: the same request writes the same rows.
        Raises ReferenceTaken when the (licensee, reference) pair or the claim exists, and
        AcceptOutcomeUnknown when the last write got no answer, and TooLargeToStore, having
        written nothing, if a row would break a Table Storage limit. A lone header (no recipient
        rows, no claim) is one plain insert: an entity-group transaction of one operation costs the
        same storage transaction and more client work (docs/storage.md).
        """
        operations: list[Any] = [_recipient_operation(comm.comm_id, recipient, upsert=claim is not None)
                                 for recipient in recipients]
        operations.append(("create", communication_entity(comm)))
        if claim is not None:
            operations.insert(0, _claim_operation(comm.comm_id, claim))
        for operation in operations:  # all of them before the first write: too large is never half-stored
            check_fits(operation[1])
        self._list(comm)  # before the header: no reader that finds communications by an index misses this one
        # Batches from the front, so the claim opens the first and the header closes the last.
        head = len(operations) % TRANSACTION_LIMIT or TRANSACTION_LIMIT
        leading, final = operations[:-head], operations[-head:]
        try:
            for batch in _batches(leading):
                self._table.submit_transaction(list(batch))
        except HttpResponseError as error:
            if _is_conflict(error):
                raise ReferenceTaken(comm.reference) from error
            raise
        try:
            if len(final) == 1:
                self._table.create_entity(final[0][1], response_preference="return-no-content")
            else:
                self._table.submit_transaction(list(final))
        except ServiceResponseError as error:
            raise AcceptOutcomeUnknown(comm.comm_id.hex) from error
        except HttpResponseError as error:
            if _is_conflict(error):
                raise ReferenceTaken(comm.reference) from error
            if (error.status_code or 0) >= 500:  # e.g. OperationTimedOut: "may or may not have succeeded"
                raise AcceptOutcomeUnknown(comm.comm_id.hex) from error
            raise

    def _list(self, comm: Communication) -> None:
        """Every index row ``comm`` needs, written at once (``gateway/listing.py``); a store built without a listing
        (tools, tests) lists it in the open-work index alone."""
        if self.listing is not None:
            self.listing.write(comm)
        elif self.open_work is not None:
            self.open_work.list_communication(comm)

    def load_claim(self, comm_id: uuid.UUID) -> tuple[KeyClaim | None, Communication | None]:
        """The partition's idempotency claim and header, either of which may not exist, in one query."""
        entities = self._table.query_entities("PartitionKey eq @pk and RowKey lt @rows",
                                              parameters={"pk": comm_id.hex, "rows": RECIPIENT_ROW_PREFIX})
        rows = {entity["RowKey"]: entity for entity in entities}
        claim = rows.get(CLAIM_ROW)
        header = rows.get(HEADER_ROW)
        return (claim_from_entity(claim) if claim is not None else None,
                communication_from_entity(header) if header is not None else None)

    def load(self, comm_id: uuid.UUID, rows: range | None = None) -> Snapshot | None:
        """The communication and its recipient rows (only those of indexes ``rows``, when given), in one query."""
        query, parameters = "PartitionKey eq @pk", {"pk": comm_id.hex}
        if rows is not None:
            query += " and ( RowKey eq @header or ( RowKey ge @first and RowKey lt @stop ) )"
            parameters |= {"header": HEADER_ROW, "first": _row_key(rows.start), "stop": _row_key(rows.stop)}
        entities = list(self._table.query_entities(query, parameters=parameters, results_per_page=1000))
        header = next((entity for entity in entities if entity["RowKey"] == HEADER_ROW), None)
        if header is None:
            return None
        recipients = [
            recipient_from_entity(entity)
            for entity in entities
            if entity["RowKey"].startswith(RECIPIENT_ROW_PREFIX)
        ]
        recipients.sort(key=lambda recipient: recipient.index)
        receipts = [receipt_from_entity(entity) for entity in entities
                    if entity["RowKey"].startswith(RECEIPT_ROW_PREFIX)]
        replies = sorted((reply_from_entity(entity) for entity in entities
                          if entity["RowKey"].startswith(REPLY_ROW_PREFIX)), key=lambda reply: reply.received_at)
        return Snapshot(communication_from_entity(header), recipients, {receipt.index: receipt for receipt in receipts},
                        replies)

    def load_header(self, comm_id: uuid.UUID) -> Communication | None:
        try:
            return communication_from_entity(self._table.get_entity(comm_id.hex, HEADER_ROW))
        except ResourceNotFoundError:
            return None

    def save(
        self, comm: Communication, recipients: Sequence[Recipient], *, claim: bool = False, counts: bool = True,
        mark: EventMark | None = None,
    ) -> None:
        """Write recipient rows and the header's new state in one transaction.

        With ``claim`` the write is conditional: existing rows must be unchanged since they
        were read (ETag) and new rows must not exist, so two workers never both take the
        same recipient. Raises ConcurrentUpdate when another writer got there first. Without
        ``counts`` the header's counts and status are left as they are (a unit of a fanned-out
        communication knows only its own rows; ``save_counts`` settles them). A ``mark`` (the change's webhook
        events, not yet published) is written in the same transaction.
        """
        most = TRANSACTION_LIMIT - 1 - (mark is not None)  # the header, and the mark, take one place each
        if len(recipients) > most:
            raise ValueError(f"at most {most} recipients per save{' with a mark' if mark is not None else ''}")
        operations: list[Any] = []
        for recipient in recipients:
            entity = recipient_entity(comm.comm_id, recipient)
            if recipient.etag is None:
                operations.append(("create", entity))
            elif claim:
                conditional = {"etag": recipient.etag, "match_condition": MatchConditions.IfNotModified}
                operations.append(("update", entity, {"mode": UpdateMode.REPLACE, **conditional}))
            else:
                operations.append(("upsert", entity, {"mode": UpdateMode.REPLACE}))
        header = {
            "PartitionKey": comm.comm_id.hex,
            "RowKey": HEADER_ROW,
            "Status": comm.status.value,
            "RecipientRowsWritten": comm.recipient_rows_written,
            "SentCount": comm.sent_count,
            "FailedCount": comm.failed_count,
            "LastError": comm.last_error or "",
            "UpdatedAt": comm.updated_at,
        }
        if not counts:
            for name in ("Status", "SentCount", "FailedCount", "RecipientRowsWritten"):
                del header[name]
        operations.append(("update", header, {"mode": UpdateMode.MERGE}))
        operations += _mark_operations(mark)
        try:
            results = self._table.submit_transaction(operations)
        except TableTransactionError as error:
            if _is_conflict(error):
                raise ConcurrentUpdate(comm.comm_id.hex) from error
            raise
        for recipient, result in zip(recipients, results, strict=False):
            recipient.etag = result.get("etag")

    def tally(self, comm_id: uuid.UUID) -> Tally | None:
        """The header's status and counts with its ETag, and what the recipient rows say, in one narrow query.

        Reads only the status columns (``$select``), so settling a 1,000-recipient communication moves
        a few kilobytes, not its numbers; a recipient with no row yet is still open.
        """
        query = "PartitionKey eq @pk and ( RowKey lt @receipts or ( RowKey ge @first and RowKey lt @stop ) )"
        entities = self._table.query_entities(query, parameters={"pk": comm_id.hex, "receipts": RECEIPT_ROW_PREFIX,
                                                                 **_MARK_RANGE},
                                              select=HEADER_COUNT_COLUMNS, results_per_page=1000)
        header: Any = None
        states: list[str] = []
        marks = 0
        for entity in entities:
            if entity["RowKey"] == HEADER_ROW:
                header = entity
            elif entity["RowKey"].startswith(RECIPIENT_ROW_PREFIX):
                states.append(entity["Status"])
            elif entity["RowKey"].startswith(MARK_ROW_PREFIX):
                marks += 1
        if header is None:
            return None
        counts = header_counts_of(header)
        sent, failed, _ = count_states(states)
        return Tally(status=counts.status, sent_count=counts.sent_count, failed_count=counts.failed_count,
                     etag=counts.etag, rows=RecipientCounts(sent, failed, counts.recipient_count - sent - failed),
                     receipts=counts.receipts, unsent=unsent_status(states), marks=marks)

    def save_counts(self, comm_id: uuid.UUID, tally: Tally, status: CommStatus, when: datetime,
                    mark: EventMark | None = None) -> None:
        """Write the counts the rows say and ``status``, if the header is unchanged since ``tally`` read it.

        How a fanned-out communication's units settle its counts (``delivery``); ConcurrentUpdate when
        another writer changed the header since. A ``mark`` is written in the same transaction.
        """
        self._merge_header(comm_id, {"Status": status.value, "SentCount": tally.rows.sent,
                                     "FailedCount": tally.rows.failed, "UpdatedAt": when}, tally.etag, mark)

    def header_and_marks(self, comm_id: uuid.UUID) -> tuple[HeaderCounts | None, int]:
        """The header's status and counts with its ETag, and how many webhook marks its partition holds, in one
        query: what a final communication's settle reads before it takes the communication off the open-work
        index (a mark another writer left must keep it there)."""
        query = "PartitionKey eq @pk and ( RowKey eq @header or ( RowKey ge @first and RowKey lt @stop ) )"
        header: HeaderCounts | None = None
        marks = 0
        for entity in self._table.query_entities(query, parameters={"pk": comm_id.hex, "header": HEADER_ROW,
                                                                    **_MARK_RANGE}, select=HEADER_COUNT_COLUMNS):
            if entity["RowKey"] == HEADER_ROW:
                header = header_counts_of(entity)
            else:
                marks += 1
        return header, marks

    def header_counts(self, comm_id: uuid.UUID) -> HeaderCounts | None:
        """The header's status and counts with its ETag: a point read of a few columns."""
        try:
            entity = self._table.get_entity(comm_id.hex, HEADER_ROW, select=HEADER_COUNT_COLUMNS)
        except ResourceNotFoundError:
            return None
        return header_counts_of(entity)

    def save_status(self, comm_id: uuid.UUID, status: CommStatus, etag: str | None, when: datetime) -> None:
        """Write the header's status if it is unchanged since it was read with ``etag``; else ConcurrentUpdate."""
        self._merge_header(comm_id, {"Status": status.value, "UpdatedAt": when}, etag)

    def _merge_header(self, comm_id: uuid.UUID, properties: dict[str, Any], etag: str | None,
                      mark: EventMark | None = None) -> None:
        """Merge ``properties`` into the header on condition of ``etag`` (with ``mark``, in one transaction);
        ConcurrentUpdate when it changed since."""
        entity = {"PartitionKey": comm_id.hex, "RowKey": HEADER_ROW, **properties}
        conditional = {"mode": UpdateMode.MERGE, "etag": etag, "match_condition": MatchConditions.IfNotModified}
        try:
            if not _mark_operations(mark):
                self._table.update_entity(entity, **conditional)
            else:
                self._table.submit_transaction([("update", entity, conditional), *_mark_operations(mark)])
        except HttpResponseError as error:
            if _is_conflict(error):
                raise ConcurrentUpdate(comm_id.hex) from error
            raise

    def add_resent_as(self, comm_id: uuid.UUID, resend_id: uuid.UUID) -> None:
        """Append ``resend_id`` to the header's ``ResentAs`` (already listed: nothing written).

        A read-modify-write of one property, merged on the ETag it was read with, so two resends appending at once
        both stay listed; when another writer (a receipt's counts, another resend) changed the header meanwhile,
        read again and retry. Raises ConcurrentUpdate after ``LINK_ATTEMPTS`` such races in a row.
        """
        for _ in range(LINK_ATTEMPTS):
            entity = self._table.get_entity(comm_id.hex, HEADER_ROW, select=[RESENT_AS_PROPERTY])
            listed = (entity.get(RESENT_AS_PROPERTY) or "").split()
            if resend_id.hex in listed:
                return
            try:
                self._merge_header(comm_id, {RESENT_AS_PROPERTY: " ".join([*listed, resend_id.hex])},
                                   entity.metadata.get("etag"))
            except ConcurrentUpdate:
                continue
            return
        raise ConcurrentUpdate(comm_id.hex)

    def receipt_view(self, comm_id: uuid.UUID, index: int, *, communication: bool = False) -> ReceiptView | None:
        """The header's counts, recipient ``index``'s row and its receipt row, in one query; None without a header.

        With ``communication``, the header read in full too (its recipient list parsed: only when an event needs it).
        """
        query = "PartitionKey eq @pk and ( RowKey eq @header or RowKey eq @recipient or RowKey eq @receipt )"
        parameters = {"pk": comm_id.hex, "header": HEADER_ROW, "recipient": _row_key(index),
                      "receipt": receipt_row_key(index)}
        rows = {entity["RowKey"]: entity for entity in self._table.query_entities(query, parameters=parameters)}
        header = rows.get(HEADER_ROW)
        if header is None:
            return None
        recipient = rows.get(_row_key(index))
        receipt = rows.get(receipt_row_key(index))
        return ReceiptView(
            header=header_counts_of(header),
            recipient_status=RecipientState(recipient["Status"]) if recipient is not None else None,
            provider_message_id=recipient.get("ProviderMessageId") if recipient is not None else None,
            receipt=receipt_from_entity(receipt) if receipt is not None else None,
            communication=communication_from_entity(header) if communication else None,
        )

    def save_receipt(self, comm_id: uuid.UUID, record: ReceiptRecord, header: dict[str, Any] | None,
                     header_etag: str | None, mark: EventMark | None = None) -> None:
        """Write a receipt row, with the header's new counts and status when given, in one transaction.

        Both conditional: the receipt row inserted, or replaced on the ETag it was read with, and the header
        merged on ``header_etag``; ConcurrentUpdate when another writer got there first (read again and
        retry). Delivery's record and claim never touch a receipt row, and a receipt never a recipient row.
        A ``mark`` is written in the same transaction.
        """
        entity = receipt_entity(comm_id, record)
        if record.etag is None:
            operations: list[Any] = [("create", entity)]
        else:
            operations = [("update", entity, {"mode": UpdateMode.REPLACE, "etag": record.etag,
                                              "match_condition": MatchConditions.IfNotModified})]
        if header is not None:
            merge = {"PartitionKey": comm_id.hex, "RowKey": HEADER_ROW, **header}
            operations.append(("update", merge, {"mode": UpdateMode.MERGE, "etag": header_etag,
                                                 "match_condition": MatchConditions.IfNotModified}))
        operations += _mark_operations(mark)
        try:
            if len(operations) == 1 and record.etag is None:
                self._table.create_entity(entity)
            elif len(operations) == 1:
                self._table.update_entity(entity, **operations[0][2])
            else:
                self._table.submit_transaction(operations)
        except (TableTransactionError, HttpResponseError) as error:
            if _is_conflict(error):
                raise ConcurrentUpdate(comm_id.hex) from error
            raise

    def save_reply(self, comm_id: uuid.UUID, reply: ReplyRecord, mark: EventMark | None = None) -> None:
        """Write a reply row (with ``mark``, in one transaction); the same message again rewrites the same row
        (providers deliver at least once)."""
        entity = reply_entity(comm_id, reply)
        check_fits(entity)
        if not _mark_operations(mark):
            self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        else:
            self._table.submit_transaction([("upsert", entity, {"mode": UpdateMode.REPLACE}),
                                            *_mark_operations(mark)])

    def clear_mark(self, mark: EventMark) -> None:
        """Delete a mark once its events are published (a mark already gone is fine: someone published them)."""
        if mark.listed and self.open_work is not None:
            self.open_work.close_mark(mark)
        else:
            self._table.delete_entity(mark.comm_id.hex, mark.row_key)

    def open_view(self, comm_id: uuid.UUID) -> tuple[Communication | None, list[EventMark]]:
        """The header (None: not stored) and the marks in its partition, in one query: what the sweep needs to
        handle a communication's open-work row."""
        query = "PartitionKey eq @pk and ( RowKey eq @header or ( RowKey ge @first and RowKey lt @stop ) )"
        parameters = {"pk": comm_id.hex, "header": HEADER_ROW, "first": MARK_ROW_PREFIX,
                      "stop": chr(ord(MARK_ROW_PREFIX) + 1)}
        header: Communication | None = None
        marks: list[EventMark] = []
        for entity in self._table.query_entities(query, parameters=parameters):
            if entity["RowKey"] == HEADER_ROW:
                header = communication_from_entity(entity)
            else:
                marks.append(mark_from_entity(entity))
        return header, marks

    def unlisted_work(self) -> Iterable[uuid.UUID]:
        """Every communication that may hold open work: not final, or with a webhook mark in its partition.

        A filtered scan of the whole table, for the one-off ``python -m gateway open-work backfill`` after an
        upgrade from a version without the open-work index; the sweep never runs it.
        """
        query = ("( RowKey eq @header and ( Status eq @scheduled or Status eq @queued or Status eq @sending ) ) "
                 "or ( RowKey ge @first and RowKey lt @stop )")
        parameters = {"header": HEADER_ROW, "scheduled": CommStatus.SCHEDULED.value,
                      "queued": CommStatus.QUEUED.value, "sending": CommStatus.SENDING.value,
                      "first": MARK_ROW_PREFIX, "stop": chr(ord(MARK_ROW_PREFIX) + 1)}
        seen: set[str] = set()
        for entity in self._table.query_entities(query, parameters=parameters, select=["PartitionKey", "RowKey"]):
            if entity["PartitionKey"] not in seen:
                seen.add(entity["PartitionKey"])
                yield uuid.UUID(entity["PartitionKey"])

    def finish(self, comm_id: uuid.UUID) -> None:
        """Take a communication off the open-work index: it is final, and no mark is left in its partition (its
        final change's events published, and no other writer's pending: the caller read them after its publish)."""
        if self.open_work is not None:
            self.open_work.close(comm_id)

    def expect_run(self, comm_id: uuid.UUID, when: datetime) -> None:
        """Record when a delayed queue message brings this communication back: until then it is not lost.

        The sweep reads it so a communication waiting out a back-off, a Retry-After or another worker's
        claim is not queued early. A merge of the one property: it never overwrites delivery's state.
        """
        entity = {"PartitionKey": comm_id.hex, "RowKey": HEADER_ROW, "NextRunAt": when}
        self._table.update_entity(entity, mode=UpdateMode.MERGE)

    def mark_swept(self, comm: Communication, when: datetime) -> None:
        """Record that the sweep re-queued this communication (and when), so it is not re-queued every run."""
        comm.sweeps += 1
        comm.updated_at = when
        entity = {"PartitionKey": comm.comm_id.hex, "RowKey": HEADER_ROW, "Sweeps": comm.sweeps, "UpdatedAt": when}
        self._table.update_entity(entity, mode=UpdateMode.MERGE)


def _is_conflict(error: HttpResponseError) -> bool:
    return error.status_code in (409, 412) or getattr(error, "error_code", None) in {
        "EntityAlreadyExists",
        "UpdateConditionNotSatisfied",
    }

