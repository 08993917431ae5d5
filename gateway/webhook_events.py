"""What a licensee's webhook is told: the event types, one event, and the two interfaces around it (issue 15).

An event describes one state change of one recipient (or of a communication) and has an id derived from that
change, so the same change always makes the same event: a duplicate receipt, a retried delivery run or a sweep
that recovers lost work writes an event that is already there, and the receiver's de-duplication by
``webhook-id`` (Standard Webhooks) sees one event however often it is sent.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class EventType(StrEnum):
    SENT = "message.sent"
    DELIVERED = "message.delivered"
    UNDELIVERED = "message.undelivered"
    FAILED = "message.failed"
    OPTED_OUT = "message.opted_out"
    CANCELED = "message.canceled"
    EXPIRED = "message.expired"
    REPLY = "message.reply"
    COMPLETED = "communication.completed"


@dataclass(frozen=True)
class WebhookEvent:
    """One event for one licensee; ``data`` is the JSON object sent as the body's ``data``."""

    event_id: str
    licensee_id: uuid.UUID
    type: EventType
    timestamp: datetime  # when the change happened (UTC); the webhook-timestamp header is the time of each attempt
    data: Mapping[str, Any]

    def body(self) -> dict[str, Any]:
        """The JSON body: ``{type, timestamp, data}``."""
        return {"type": self.type.value, "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
                "data": dict(self.data)}


def event_id_for(comm_id: uuid.UUID, type_: EventType, index: int | None = None, detail: str = "") -> str:
    """The id of the event for one change: the same communication, recipient, type and detail give the same id.

    ``detail`` tells apart events of one type for one recipient (a reply's provider message id).
    """
    key = f"{comm_id.hex}/{'' if index is None else index}/{type_.value}/{detail}"
    return "evt_" + hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Endpoint:
    """A licensee's registered webhook: where events go and the secrets that sign them."""

    licensee_id: uuid.UUID
    url: str
    secret: str  # "whsec_<base64>"
    previous_secret: str | None = None  # still signs alongside ``secret`` for a while after a rotation
    previous_until: datetime | None = None


class EndpointDirectory(Protocol):
    """Where a licensee's endpoint is looked up (gateway/webhook_endpoints.py)."""

    def find(self, licensee_id: uuid.UUID) -> Endpoint | None: ...


class EventSink(Protocol):
    """Where state changes hand their events (gateway/webhook_outbox.py).

    ``publish`` stores the events (idempotent by id: an event already stored is left as it is) and queues
    them for delivery; it raises when storage fails, so the caller's own retry publishes them again.
    Events of a licensee with no endpoint are dropped without a storage call.
    """

    def publish(self, events: Sequence[WebhookEvent]) -> None: ...
