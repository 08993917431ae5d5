"""Inbound messages: what recipients text back, stored, attributed to the communication they answer, and keywords.

A provider's route parses its request into an ``InboundMessage`` (Twilio's inbound webhook, an ACS ``SMSReceived``
event) and hands it to ``InboundBook.receive``, which, before the provider is answered:

1. stores it in ``<prefix>Inbound`` (PartitionKey = the provider's message id, escaped; RowKey = the provider),
   so nothing received is lost, and a message already processed (providers deliver at least once) is a duplicate;
2. matches it through the reply index (``gateway/reply_index.py``) and, when it is attributed, writes it as a reply
   row in its communication's partition (``CommunicationStore.save_reply``), where the status read shows it, and
   with webhooks its ``message.reply`` event's mark in the same transaction, then publishes the event;
3. for a keyword (``gateway/keywords.py``), adds or removes the number on the opt-out list of every licensee that
   sent to it from that number (an opt-out is honoured even outside the reply window, and on a shared number);
4. marks the message processed, with what it matched.

Every step can be repeated: a retry (Event Grid's) after a failure half-way finishes the work, and a repeat after
the last step changes nothing. A reply that matches nothing, or several licensees, is kept here only: no licensee
sees it.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import UpdateMode

from gateway.connections import TableStore
from gateway.keywords import Keyword, classify
from gateway.message_index import key_of
from gateway.redact import mask_phone
from gateway.reply_index import Match, MatchKind, ReplyIndex
from gateway.storage import CommunicationStore, ReplyRecord, utcnow
from gateway.webhook_emit import reply_event
from gateway.webhook_events import EventSink
from gateway.webhook_publish import Emitter

log = logging.getLogger("gateway.inbound")

KEYWORD_SOURCE = "keyword"  # the opt-out list's Source for a change a recipient's message made


@dataclass(frozen=True)
class InboundMessage:
    """One message a phone sent to one of our numbers, as its provider's code parsed it."""

    provider: str
    message_id: str
    sender: str  # their number, E.164
    to: str  # our number, E.164
    body: str
    received_at: datetime | None = None  # the provider's time, when it gives one (Twilio does not)


class InboundOutcome(enum.StrEnum):
    """What receiving did; every outcome is answered 2xx (the provider cannot change any of them)."""

    MATCHED = "matched"  # stored and shown as a reply of a communication
    UNMATCHED = "unmatched"  # stored; attributed to no communication
    DUPLICATE = "duplicate"  # processed before


class OptOutSink(Protocol):
    """The part of the opt-out list (``gateway/optouts.py``, ``Gateway.optouts``) a keyword changes."""

    def add(self, licensee_id: uuid.UUID, number: str, *, reason: str, source: str) -> None: ...

    def remove(self, licensee_id: uuid.UUID, number: str, *, source: str) -> None: ...


class InboundStore(TableStore):
    """``<prefix>Inbound``: every inbound message, keyed by the provider's id."""

    def record(self, message: InboundMessage, now: datetime) -> tuple[datetime, bool]:
        """Store ``message`` unless it is; returns its arrival time as first stored and whether it was processed."""
        entity = {"PartitionKey": key_of(message.message_id), "RowKey": key_of(message.provider),
                  "From": message.sender, "To": message.to, "Body": message.body,
                  "ReceivedAt": message.received_at or now, "Processed": False}
        try:
            self._table.create_entity(entity)
        except ResourceExistsError:
            stored = self._table.get_entity(entity["PartitionKey"], entity["RowKey"])
            return stored["ReceivedAt"], bool(stored.get("Processed"))
        return entity["ReceivedAt"], False

    def processed(self, message: InboundMessage, result: Match, keyword: Keyword | None) -> None:
        """Note what the message matched; a message so marked is a duplicate when it comes again."""
        entity: dict[str, object] = {"PartitionKey": key_of(message.message_id), "RowKey": key_of(message.provider),
                                     "Processed": True, "Match": result.kind.value, "Keyword": keyword or ""}
        if result.sent is not None:
            entity |= {"LicenseeId": result.sent.licensee_id.hex, "CommId": result.sent.comm_id.hex,
                       "Index": result.sent.index}
        self._table.update_entity(entity, mode=UpdateMode.MERGE)


    def unattributed(self, since: datetime) -> list[dict[str, Any]]:
        """Messages received since ``since`` that no licensee is shown (unmatched or ambiguous), oldest first:
        for operators. A filtered query over the table (operators ask rarely and for a few
        days; the request path never does)."""
        rows = self._table.query_entities("ReceivedAt ge @since and Match ne @matched",
                                          parameters={"since": since, "matched": MatchKind.MATCHED.value})
        return sorted((dict(row) for row in rows), key=lambda row: row["ReceivedAt"])


class InboundBook:
    """Receives inbound messages: the one place that decides what one changes."""

    def __init__(self, inbound: InboundStore, index: ReplyIndex, communications: CommunicationStore, *,
                 window: timedelta, optouts: OptOutSink | None = None,
                 clock: Callable[[], datetime] = utcnow, events: EventSink | None = None) -> None:
        self._inbound = inbound
        self._emitter = Emitter(events, communications) if events is not None else None
        self._index = index
        self._communications = communications
        self._window = window
        self._optouts = optouts
        self._clock = clock

    def receive(self, message: InboundMessage) -> InboundOutcome:
        """Store, attribute and act on ``message``; raises only when storage fails (AzureError)."""
        received_at, processed = self._inbound.record(message, self._clock())
        if processed:
            log.info("inbound %s %s: duplicate", message.provider, message.message_id)
            return InboundOutcome.DUPLICATE
        result = self._index.find(message.to, message.sender, received_at, self._window)
        if result.sent is not None:
            self._save_reply(result.sent.licensee_id, result.sent.comm_id, ReplyRecord(
                provider=message.provider, message_id=message.message_id, index=result.sent.index,
                sender=message.sender, to=message.to, body=message.body, received_at=received_at))
        keyword = classify(message.body)
        if keyword in (Keyword.OPT_OUT, Keyword.OPT_IN):
            self._consent(keyword, message, result)
        self._inbound.processed(message, result, keyword)
        log.info("inbound %s %s from %s to %s: %s%s%s", message.provider, message.message_id,
                 mask_phone(message.sender), mask_phone(message.to), result.kind,
                 f" comm {result.sent.comm_id.hex}" if result.sent else "", f", keyword {keyword}" if keyword else "")
        return InboundOutcome.MATCHED if result.kind is MatchKind.MATCHED else InboundOutcome.UNMATCHED

    def _save_reply(self, licensee_id: uuid.UUID, comm_id: uuid.UUID, reply: ReplyRecord) -> None:
        """Write the reply row; with webhooks for its licensee, mark its ``message.reply`` in the same transaction
        and publish it (reading the header first: the event carries the communication's Reference and ids)."""
        if self._emitter is None or not self._emitter.wants(licensee_id):
            self._communications.save_reply(comm_id, reply)
            return
        comm = self._communications.load_header(comm_id)
        event = reply_event(comm, reply) if comm is not None else None
        events = [event] if event is not None else []
        mark = self._emitter.mark(comm_id, events, reply.received_at)
        self._communications.save_reply(comm_id, reply, mark)
        self._emitter.publish(mark, events)

    def _consent(self, keyword: Keyword, message: InboundMessage, result: Match) -> None:
        """STOP or START for every licensee that ever sent to this number from this one (idempotent)."""
        if self._optouts is None:
            log.warning("inbound %s %s: keyword %s not applied: no opt-out list is wired", message.provider,
                        message.message_id, keyword)
            return
        for licensee in result.licensees:
            if keyword is Keyword.OPT_OUT:
                self._optouts.add(licensee, message.sender, reason=message.body.strip().upper()[:20],
                                  source=KEYWORD_SOURCE)
            else:
                self._optouts.remove(licensee, message.sender, source=KEYWORD_SOURCE)
