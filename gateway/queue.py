"""The delivery queue: messages carry only a CommId; the table is the source of truth.

Messages are base64 text (the client's encode policy), which is what the Functions queue
trigger decodes by default.
"""

from __future__ import annotations

import contextlib
import json
import uuid

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient


class BadQueueMessage(ValueError):
    """The message is not one this gateway wrote; retrying cannot help."""


def encode_message(comm_id: uuid.UUID) -> str:
    return json.dumps({"CommId": comm_id.hex}, separators=(",", ":"))


def decode_message(body: bytes | str) -> uuid.UUID:
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        return uuid.UUID(json.loads(text)["CommId"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise BadQueueMessage(f"not a delivery message: {error}") from error


class DeliveryQueue:
    def __init__(self, client: QueueClient) -> None:
        self._client = client

    @property
    def name(self) -> str:
        return self._client.queue_name

    def ensure_queue(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self._client.create_queue()

    def enqueue(self, comm_id: uuid.UUID, *, delay_seconds: int = 0) -> None:
        self._client.send_message(encode_message(comm_id), visibility_timeout=delay_seconds or None)
