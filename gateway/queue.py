"""The delivery queue: messages carry a CommId (maybe a unit of its recipients, and a retry count); the table is
the source of truth.

Messages are base64 text (the client's encode policy), which is what the Functions queue
trigger decodes by default. ``Attempt`` counts the delivery runs before this message, so a
retry re-queued with a delay (to honour a provider's Retry-After) keeps its place in the
retry budget. ``Start`` and ``Stop`` name a unit: the recipients with those indexes (Stop
excluded), one provider batch of a larger communication (docs/delivery.md, fan-out); a
message without them (as accept and the sweep write) means the whole communication. ``Trace`` is the W3C
``traceparent`` of the span that queued it (``gateway.telemetry``), absent when tracing is off or the sweep queued it;
a message without it, or with one that is not a traceparent, is still delivered.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from gateway import telemetry

MAX_DELAY_SECONDS = 7 * 24 * 3600
"""The longest a Storage queue keeps a message out of sight: a scheduled send further ahead comes back early
and waits again (``delivery.NotDueYet``)."""
TIME_TO_LIVE_SECONDS = 7 * 24 * 3600
"""How long a message stays in the queue once visible (the service's default). A delayed message lives this long
after its delay: the service refuses a visibility later than the expiry, and a message must never expire unseen."""


class BadQueueMessage(ValueError):
    """The message is not one this gateway wrote; retrying cannot help."""


@dataclass(frozen=True)
class DeliveryMessage:
    comm_id: uuid.UUID
    attempt: int = 0  # delivery runs before this message was written
    unit: range | None = None  # the recipients' indexes this message delivers; None: the whole communication
    traceparent: str | None = None  # the W3C trace context of the span that queued it


def encode_message(comm_id: uuid.UUID, attempt: int = 0, unit: range | None = None,
                   traceparent: str | None = None) -> str:
    fields: dict[str, object] = {"CommId": comm_id.hex}
    if unit is not None:
        fields["Start"], fields["Stop"] = unit.start, unit.stop
    if attempt:
        fields["Attempt"] = attempt
    if traceparent:
        fields["Trace"] = traceparent
    return json.dumps(fields, separators=(",", ":"))


def decode_message(body: bytes | str) -> DeliveryMessage:
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        fields = json.loads(text)
        unit = None
        if "Start" in fields or "Stop" in fields:
            unit = range(int(fields["Start"]), int(fields["Stop"]))
            if unit.start < 0 or not unit:
                raise ValueError(f"an empty unit {unit.start}..{unit.stop}")
        trace = fields.get("Trace")
        return DeliveryMessage(uuid.UUID(fields["CommId"]), max(0, int(fields.get("Attempt", 0))), unit,
                               trace if isinstance(trace, str) and len(trace) <= 128 else None)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise BadQueueMessage(f"not a delivery message: {error}") from error


class DeliveryQueue:
    def __init__(self, client: QueueClient) -> None:
        self._client = client

    def ensure_queue(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self._client.create_queue()

    def ping(self, seconds: float) -> None:
        """Raise unless the queue answers within ``seconds``, tried once (the health check's probe)."""
        self._client.get_queue_properties(connection_timeout=seconds, read_timeout=seconds, retry_total=0)

    def enqueue(
        self, comm_id: uuid.UUID, *, delay_seconds: int = 0, attempt: int = 0, unit: range | None = None
    ) -> None:
        """Queue a run, out of sight for ``delay_seconds`` (at most ``MAX_DELAY_SECONDS``)."""
        if not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"a queue message waits 0 to {MAX_DELAY_SECONDS} s, not {delay_seconds}")
        self._client.send_message(encode_message(comm_id, attempt, unit, telemetry.traceparent()),
                                  visibility_timeout=delay_seconds or None,
                                  time_to_live=delay_seconds + TIME_TO_LIVE_SECONDS if delay_seconds else None)

    def oldest_waiting(self) -> datetime | None:
        """When the message at the head of the queue was written, if one is waiting to be taken (a backlog)."""
        for message in self._client.peek_messages(max_messages=1):
            return message.inserted_on
        return None
