"""The contract between delivery and a provider.

Delivery hands a provider a batch of ``OutboundSms`` (at most ``max_batch_size``) and gets
one ``SendResult`` per message back. A provider never raises for something that went wrong
with a message or the provider's service: it reports ``RETRY`` (transient: rate limits,
5xx, time-outs, refused connections) or ``FAILED`` (permanent: the provider will never take
this message) per message, so delivery can record each recipient's fate.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


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


@dataclass(frozen=True)
class SendResult:
    recipient_id: uuid.UUID
    outcome: Outcome
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retry_after_seconds: float | None = None


class SmsProvider(Protocol):
    name: str
    max_batch_size: int
    # True when sending the same (comm_id, recipient_id) again cannot reach the phone twice,
    # so a recipient whose earlier attempt ended in an unknown state may be sent again.
    resend_is_safe: bool

    def send(self, messages: Sequence[OutboundSms]) -> list[SendResult]: ...
