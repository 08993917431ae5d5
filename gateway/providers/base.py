"""The contract between delivery and a provider.

Delivery hands a provider a batch of ``OutboundSms`` (at most ``max_batch_size``) and gets
one ``SendResult`` per message back. The batch is claimed until a deadline: a provider starts no
call that could still be running then, and answers the messages it did not try ``RETRY`` with
``OutOfTime`` (``common.OUT_OF_TIME``), so another worker never takes over a call still in flight.
A provider never raises for something that went wrong with a message or the provider's service:
it reports ``RETRY`` (transient: rate limits, 5xx, time-outs, refused connections) or ``FAILED``
(permanent: the provider will never take this message) per message, so delivery can record each
recipient's fate.

Two optional attributes tell delivery what receipts need (docs/delivery.md, "Receipts"): ``sends_receipts``
(default True; the outbox says False) and ``receipts_name_the_recipient`` (default False: a receipt may name only
the provider's message id, so delivery writes the message-id index, one row per message accepted; True when every
message's callback URL carries its CommId and index, and the index would never be read). A third,
``picks_sender`` (default False), says the provider chooses the sending number itself (a Twilio Messaging
Service): the communication's sender is then not the number a reply comes to, so the reply index is written from
the receipt that names the number (``Receipt.sender``), not at send time (docs/replies.md).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from gateway.receipts import Receipt


class Outcome(enum.StrEnum):
    ACCEPTED = "Accepted"
    FAILED = "Failed"
    RETRY = "Retry"


@dataclass(frozen=True)
class OutboundSms:
    comm_id: uuid.UUID
    recipient_id: uuid.UUID
    to: str
    sender: str
    body: str
    first_attempt_at: datetime | None = None  # stable across retries, for providers that de-duplicate
    index: int | None = None  # the recipient's position in its communication: callbacks name it to find the row


@dataclass(frozen=True)
class SendResult:
    recipient_id: uuid.UUID
    outcome: Outcome
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retry_after_seconds: float | None = None
    # FAILED because the recipient unsubscribed from this sender (Twilio's 21610): the recipient ends OptedOut
    # and the number joins the licensee's opt-out list (``gateway/optouts.py``), so no other sender tries it.
    opted_out: bool = False
    segments: int | None = None  # ACCEPTED: how many parts the provider says it sends, when its answer says (Twilio)


class SmsProvider(Protocol):
    name: str
    max_batch_size: int
    # True when sending the same (comm_id, recipient_id) again cannot reach the phone twice,
    # so a recipient whose earlier attempt ended in an unknown state may be sent again.
    resend_is_safe: bool
    # How long after the first attempt a resend stays safe (None: forever; ACS de-duplicates for 5 minutes).
    resend_window_seconds: float | None

    def send(self, messages: Sequence[OutboundSms], deadline: float | None = None) -> list[SendResult]:
        """One result per message; no call starts that could outlast ``deadline`` (``time.monotonic()``)."""
        ...


class ReconcilingProvider(SmsProvider, Protocol):
    """A provider that can say which messages it already has, so an unknown outcome need not be guessed.

    ``find_sent`` gets messages whose last attempt may or may not have reached the provider
    (a worker died mid-call, or a time-out after the request went out) and returns the
    provider's message id for each one it finds; the rest were never received and are safe
    to send. It raises (or returns None) when it cannot tell, and delivery then assumes the worst.
    """

    def find_sent(self, messages: Sequence[OutboundSms]) -> dict[uuid.UUID, str] | None: ...


@runtime_checkable
class ReceiptSource(Protocol):
    """A provider that can be asked what became of a message, for receipts that never came (docs/delivery.md).

    ``look_up`` returns the provider's current word on ``message_id`` as a ``Receipt`` (its ``state`` None while
    the status is not final), or None when it cannot tell now (the message is unknown to it, the call failed);
    it may also raise, which means the same. The missing-receipt check asks it again later.
    """

    name: str

    def look_up(self, message_id: str) -> Receipt | None: ...
