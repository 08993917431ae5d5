"""The webhook queue (``SMS_WEBHOOK_QUEUE_NAME``): each message names one licensee's events, by id.

The events themselves (body, status, attempts) live in the outbox table, the source of truth; a message only says
"send these now". One message carries the events one publish stored for one licensee (at most a transaction's
100), so a licensee's burst costs one queue write, and its endpoint's failures hold up only its own messages.
Messages are base64 text, as the Functions queue trigger decodes by default.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from gateway.queue import BadQueueMessage

MAX_DELAY_SECONDS = 7 * 24 * 3600  # the longest a queue message can stay invisible


@dataclass(frozen=True)
class WebhookMessage:
    licensee_id: uuid.UUID
    event_ids: tuple[str, ...]


def encode_webhook_message(message: WebhookMessage) -> str:
    return json.dumps({"Licensee": message.licensee_id.hex, "Events": list(message.event_ids)},
                      separators=(",", ":"))


def decode_webhook_message(body: bytes | str) -> WebhookMessage:
    try:
        fields = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
        ids = fields["Events"]
        if not isinstance(ids, list) or not ids or not all(isinstance(each, str) and each for each in ids):
            raise ValueError("Events is a list of event ids")
        return WebhookMessage(uuid.UUID(fields["Licensee"]), tuple(ids))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise BadQueueMessage(f"not a webhook message: {error}") from error


class WebhookQueue:
    def __init__(self, client: QueueClient) -> None:
        self._client = client

    def ensure_queue(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self._client.create_queue()

    def enqueue(self, licensee_id: uuid.UUID, event_ids: Sequence[str], *, delay_seconds: int = 0) -> None:
        """Queue the events for sending in ``delay_seconds`` (capped at the queue's 7 days)."""
        delay = min(max(0, delay_seconds), MAX_DELAY_SECONDS)
        text = encode_webhook_message(WebhookMessage(licensee_id, tuple(event_ids)))
        self._client.send_message(text, visibility_timeout=delay or None)
