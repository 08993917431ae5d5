"""Delivery receipts: what a provider later says happened to a message it accepted.

A provider's callback (Twilio's status callback, an ACS delivery report through Event Grid) is parsed by
that provider's own code into a ``Receipt``; the gateway's receipt book applies it to the recipient it is
about. The book is the one place that decides what a receipt changes: it only moves a recipient forward,
records each (message, provider status) once, and never loses a receipt that arrives before delivery
recorded the send (docs/delivery.md, "Receipts").
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime


class ReceiptState(enum.StrEnum):
    """What a receipt says of the recipient, in the recipient's own terms."""

    SENT = "Sent"  # handed on by the provider: a receipt may still follow
    DELIVERED = "Delivered"  # the phone has it
    UNDELIVERED = "Undelivered"  # the carrier could not deliver it
    FAILED = "Failed"  # the provider could not send it at all


@dataclass(frozen=True)
class Receipt:
    """One provider report about one message, as its provider's code parsed it.

    ``provider_status`` is the provider's own word (``delivered``, ``queued``…), kept as it was said;
    ``state`` is what it means for the recipient, or None for a status that is recorded but not shown
    (Twilio's ``queued``, ``sending``, ``accepted``…). The message is found by ``comm_id`` and ``index``
    when the provider echoes what the gateway gave it, else by ``message_id`` through the index delivery
    writes, else (ACS) by ``comm_id`` and ``to``.
    """

    provider: str
    message_id: str
    provider_status: str
    state: ReceiptState | None
    error_code: str | None = None
    error_message: str | None = None
    occurred_at: datetime | None = None  # the provider's time for it, when it gives one
    comm_id: uuid.UUID | None = None
    index: int | None = None
    to: str | None = None  # E.164


class ReceiptOutcome(enum.StrEnum):
    """What applying a receipt did; every outcome is answered 2xx (the provider cannot fix any of them)."""

    APPLIED = "applied"  # the recipient moved forward
    RECORDED = "recorded"  # stored, but it moves nothing (not a final state, or older than what is known)
    DUPLICATE = "duplicate"  # this (message, provider status) was recorded before
    UNKNOWN = "unknown"  # no message of ours has this id
