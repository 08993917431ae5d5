"""Delivery receipts: what a provider later says happened to a message it accepted.

A provider's callback (Twilio's status callback, an ACS delivery report through Event Grid) is parsed by
that provider's own code into a ``Receipt``; the gateway's receipt book applies it to the recipient it is
about. The book is the one place that decides what a receipt changes: it only moves a recipient forward,
records each (message, provider status) once, and never loses a receipt that arrives before delivery
recorded the send (docs/delivery.md, "Receipts").
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from gateway import telemetry
from gateway.message_index import MessageIndex
from gateway.optouts import OptOutList
from gateway.reply_index import ReplyIndex, Sent, number_key
from gateway.storage import (
    RECEIPT_COUNT_PROPERTIES,
    CommStatus,
    Communication,
    CommunicationStore,
    ConcurrentUpdate,
    EventMark,
    HeaderCounts,
    ReceiptCounts,
    ReceiptRecord,
    ReceiptView,
    RecipientState,
    aggregate_status,
    utcnow,
)
from gateway.webhook_emit import receipt_event
from gateway.webhook_events import EventSink, WebhookEvent
from gateway.webhook_publish import Emitter

log = logging.getLogger("gateway.receipts")


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
    # The recipient blocked the sender (ACS's "Sender blocked for given recipient"): the number joins the
    # licensee's opt-out list (``gateway/optouts.py``), so no other sender of the licensee tries it.
    opted_out: bool = False
    # The number the message went from, when the provider names it (Twilio's From): a Messaging Service picks it
    # only after the create, so the reply index is written from here for such a provider (docs/replies.md).
    sender: str | None = None
    # How many parts the provider sent the message in, when its report says (ACS: its last delivery attempt's
    # segments, succeeded and failed); kept on the receipt row and shown when the send's answer gave none.
    segments: int | None = None


class ReceiptOutcome(enum.StrEnum):
    """What applying a receipt did; every outcome is answered 2xx (the provider cannot fix any of them)."""

    APPLIED = "applied"  # the recipient moved forward
    RECORDED = "recorded"  # stored, but it moves nothing (not a final state, or older than what is known)
    DUPLICATE = "duplicate"  # this (message, provider status) was recorded before
    UNKNOWN = "unknown"  # no message of ours has this id


# --- the state machine (pure: docs/delivery.md, "Receipts") ----------------------------------------------------------

RANK = {ReceiptState.SENT: 1, ReceiptState.DELIVERED: 2, ReceiptState.UNDELIVERED: 2, ReceiptState.FAILED: 2}
"""How far a receipt state is along: a receipt moves a recipient only to a higher rank, so the first final wins."""


def moves_forward(current: ReceiptState | None, incoming: ReceiptState | None) -> bool:
    """Whether a receipt saying ``incoming`` moves a recipient whose receipts so far said ``current``."""
    if incoming is None:
        return False
    return current is None or RANK[incoming] > RANK[current]


def shown_state(delivery: RecipientState, receipt: ReceiptState | None) -> RecipientState:
    """A recipient's status as the status view shows it: a final receipt's, else delivery's (Sent stays Sent)."""
    if receipt is None or RANK[receipt] < RANK[ReceiptState.DELIVERED]:
        return delivery
    return RecipientState(receipt.value)


def counted(counts: ReceiptCounts, state: ReceiptState) -> ReceiptCounts:
    """``counts`` with one more recipient a final receipt put in ``state``."""
    delivered, undelivered, failed = counts
    if state is ReceiptState.DELIVERED:
        delivered += 1
    elif state is ReceiptState.UNDELIVERED:
        undelivered += 1
    elif state is ReceiptState.FAILED:
        failed += 1
    return ReceiptCounts(delivered, undelivered, failed)


def overall_status(delivered_status: CommStatus, sent: int, receipts: ReceiptCounts) -> CommStatus:
    """The communication's status: delivery's (``aggregate_status``) until every recipient the provider accepted
    has a final receipt, then Delivered (all of them, none refused), Undelivered (none) or PartiallyDelivered."""
    if delivered_status not in {CommStatus.SENT, CommStatus.PARTIALLY_SENT} or receipts.final < sent:
        return delivered_status
    if receipts.delivered == 0:
        return CommStatus.UNDELIVERED
    if delivered_status is CommStatus.SENT and receipts.delivered >= sent:
        return CommStatus.DELIVERED
    return CommStatus.PARTIALLY_DELIVERED


def header_status(header: HeaderCounts, receipts: ReceiptCounts) -> CommStatus:
    """What the header's status should be with ``receipts``: it moves only once delivery has finished, and only
    when something was sent (nothing sent stays Failed, Canceled or Expired, as delivery wrote it)."""
    if not header.status.is_final or header.pending > 0 or header.sent_count == 0:
        return header.status
    delivered_status = aggregate_status(header.sent_count, header.failed_count, 0)
    return overall_status(delivered_status, header.sent_count, receipts)


def status_key(provider_status: str) -> str:
    """A provider status as the receipt row's ``Seen`` list keeps it: lower case, one word."""
    return "_".join(provider_status.lower().split()) or "_"


@dataclass(frozen=True)
class Decision:
    """What one receipt does: its outcome, the receipt row to write (None: write nothing), and the header's
    new receipt counts and status when they change."""

    outcome: ReceiptOutcome
    record: ReceiptRecord | None = None
    counts: ReceiptCounts | None = None
    status: CommStatus | None = None


def decide(view: ReceiptView, receipt: Receipt, index: int, now: datetime) -> Decision:
    """Apply ``receipt`` to what ``view`` read, on paper.

    A message id other than the one the recipient is known by (its recorded provider id, else the one earlier
    receipts named) is not this recipient's message: UNKNOWN, nothing written. A (message, status) already
    recorded is a DUPLICATE. Otherwise the status is recorded; it moves the recipient only forward, and never
    one delivery recorded Failed (RECORDED). A final state counts once in the header, and completes the
    communication's status when it is the last one missing.
    """
    known = view.provider_message_id or (view.receipt.message_id if view.receipt is not None else None)
    if known and known != receipt.message_id:
        return Decision(ReceiptOutcome.UNKNOWN)
    record = view.receipt or ReceiptRecord(index=index, message_id=receipt.message_id, provider=receipt.provider)
    key = status_key(receipt.provider_status)
    if key in record.seen:
        return Decision(ReceiptOutcome.DUPLICATE)
    current = ReceiptState(record.state) if record.state else None
    moves = moves_forward(current, receipt.state) and view.recipient_status is not RecipientState.FAILED
    written = replace(record, message_id=receipt.message_id, provider=receipt.provider, seen=(*record.seen, key),
                      segments=receipt.segments if receipt.segments is not None else record.segments, updated_at=now)
    if not moves or receipt.state is None:
        return Decision(ReceiptOutcome.RECORDED, written)
    written = replace(written, state=receipt.state.value, error_code=receipt.error_code,
                      error_message=receipt.error_message, receipt_at=now, occurred_at=receipt.occurred_at)
    if RANK[receipt.state] < RANK[ReceiptState.DELIVERED]:
        return Decision(ReceiptOutcome.APPLIED, written)
    counts = counted(view.header.receipts, receipt.state)
    status = header_status(view.header, counts)
    return Decision(ReceiptOutcome.APPLIED, written, counts, status if status is not view.header.status else None)


# --- the receipt book ------------------------------------------------------------------------------------------------

# The metric outcome (``gateway.telemetry``) of a receipt that moved its recipient to a final state.
FINAL_OUTCOMES = {ReceiptState.DELIVERED: "delivered", ReceiptState.UNDELIVERED: "undelivered",
                  ReceiptState.FAILED: "failed"}
APPLY_TRIES = 16  # reads and conditional writes before giving up; each 412 means another receipt or delivery wrote


class ReceiptBook:
    """Applies receipts to the recipients they are about: the one place that decides what a receipt changes.

    Costs per receipt (docs/delivery.md, "What a receipt costs"): finding the recipient (nothing when the
    receipt names CommId and index, one point read of the message-id index otherwise, or of the header by
    CommId and number), one query for the header, the recipient row and its receipt row, and one write (the
    receipt row, with the header's counts in the same transaction when the state is final). With webhooks
    (``events``), a receipt that moves a recipient to a final state makes one event (``message.delivered``,
    ``message.undelivered``, ``message.failed``), marked in that same write; a duplicate, or a receipt that moves
    nothing, makes none.
    """

    def __init__(self, store: CommunicationStore, index: MessageIndex | None = None,
                 clock: Callable[[], datetime] = utcnow, optouts: OptOutList | None = None,
                 replies: ReplyIndex | None = None, events: EventSink | None = None) -> None:
        self._store = store
        self._index = index
        self._clock = clock
        self._optouts = optouts
        self._replies = replies  # given when the provider picks the sender: the receipt names it
        self._emitter = Emitter(events, store) if events is not None else None

    def apply(self, receipt: Receipt) -> ReceiptOutcome:
        """Record ``receipt`` on its recipient and say what it did; raises only when storage fails (AzureError)."""
        found = self._find(receipt)
        if found is None:
            log.info("receipt %s %s for message %s: no recipient of ours", receipt.provider, receipt.provider_status,
                     receipt.message_id)
            return ReceiptOutcome.UNKNOWN
        comm_id, index = found
        with telemetry.applying_receipt(receipt.provider, comm_id, status_key(receipt.provider_status)):
            outcome = self._apply(receipt, comm_id, index)
        if outcome is ReceiptOutcome.APPLIED and receipt.state in FINAL_OUTCOMES:
            telemetry.count(FINAL_OUTCOMES[receipt.state], receipt.provider)
        return outcome

    def _apply(self, receipt: Receipt, comm_id: uuid.UUID, index: int) -> ReceiptOutcome:
        for _ in range(APPLY_TRIES):
            view = self._view(comm_id, index, receipt)
            if view is None or index >= view.header.recipient_count:
                log.info("receipt %s %s: comm %s has no recipient %d", receipt.provider, receipt.provider_status,
                         comm_id.hex, index)
                return ReceiptOutcome.UNKNOWN
            decision = decide(view, receipt, index, self._clock())
            if decision.record is None:
                log.info("receipt %s %s for message %s on comm %s recipient %d: %s", receipt.provider,
                         receipt.provider_status, receipt.message_id, comm_id.hex, index, decision.outcome)
                return decision.outcome
            if receipt.opted_out and decision.outcome is ReceiptOutcome.APPLIED:
                self._list_number(view.communication, index, receipt)  # before the receipt: retried whole
            events = self._events(view, decision)
            mark = self._mark(comm_id, events)
            try:
                self._store.save_receipt(comm_id, decision.record, _header_update(decision, self._clock()),
                                         view.header.etag, mark)
            except ConcurrentUpdate:
                continue
            if self._emitter is not None:
                self._emitter.publish(mark, events)
            log.info("receipt %s %s on comm %s recipient %d: %s%s", receipt.provider, receipt.provider_status,
                     comm_id.hex, index, decision.outcome, f", comm {decision.status}" if decision.status else "")
            if decision.outcome is ReceiptOutcome.APPLIED:
                self._index_reply(view.communication, index, receipt)
            return decision.outcome
        raise ConcurrentUpdate(f"{comm_id.hex} recipient {index}: receipt not recorded after {APPLY_TRIES} tries")

    def _view(self, comm_id: uuid.UUID, index: int, receipt: Receipt) -> ReceiptView | None:
        """What applying the receipt reads, in one query; the header in full as well (parsed) when something
        needs the communication: its webhook event, the opt-out list, the reply index of a picked sender."""
        needed = (self._emitter is not None or (receipt.opted_out and self._optouts is not None)
                  or (self._replies is not None and receipt.sender is not None))
        if not needed:
            return self._store.receipt_view(comm_id, index)
        return self._store.receipt_view(comm_id, index, communication=True)

    def _events(self, view: ReceiptView, decision: Decision) -> list[WebhookEvent]:
        """The webhook event of a receipt that moved its recipient to a final state; none for any other."""
        if self._emitter is None or decision.outcome is not ReceiptOutcome.APPLIED or decision.record is None:
            return []
        event = receipt_event(view.communication, decision.record) if view.communication is not None else None
        return [event] if event is not None else []

    def _mark(self, comm_id: uuid.UUID, events: list[WebhookEvent]) -> EventMark | None:
        if self._emitter is None or not events:
            return None
        return self._emitter.mark(comm_id, events, events[0].timestamp)

    def _list_number(self, comm: Communication | None, index: int, receipt: Receipt) -> None:
        """Put the recipient's number on its licensee's opt-out list: one upsert (the header came with the view).

        Raises when storage fails, before the receipt is saved, so the provider's retry (Event Grid's) does both.
        """
        if self._optouts is None:
            return
        if comm is None or index >= len(comm.recipients_spec):
            return
        self._optouts.add(comm.licensee_id, comm.recipients_spec[index].phone_number,
                          reason=receipt.error_message or receipt.provider_status, source=receipt.provider)

    def _index_reply(self, comm: Communication | None, index: int, receipt: Receipt) -> None:
        """The reply index's row for the number the provider picked (best effort, as at send time).

        Only for a provider that picks the sender, and only on a receipt that moved the recipient forward (at most
        two per message: sent, then delivered or not): one merge (the header came with the view).
        """
        if self._replies is None or not receipt.sender or number_key(receipt.sender) is None:
            return
        if comm is None or index >= len(comm.recipients_spec):
            return
        sent = Sent(comm.licensee_id, comm.comm_id, index, receipt.occurred_at or self._clock(),
                    comm.reply_is_allowed)
        self._replies.record(receipt.sender, [(comm.recipients_spec[index].phone_number, sent)])

    def _find(self, receipt: Receipt) -> tuple[uuid.UUID, int] | None:
        """The recipient a receipt is about: named, through the message-id index, or by CommId and number."""
        if receipt.comm_id is not None and receipt.index is not None:
            return receipt.comm_id, receipt.index
        if self._index is not None and receipt.message_id:
            found = self._index.find(receipt.provider, receipt.message_id)
            if found is not None:
                return found
        if receipt.comm_id is not None and receipt.to:
            comm = self._store.load_header(receipt.comm_id)
            if comm is None:
                return None
            to = receipt.to if receipt.to.startswith("+") else f"+{receipt.to}"
            numbers = [spec.phone_number for spec in comm.recipients_spec]
            return (receipt.comm_id, numbers.index(to)) if to in numbers else None
        return None


def _header_update(decision: Decision, now: datetime) -> dict[str, object] | None:
    if decision.counts is None:
        return None
    update: dict[str, object] = dict(zip(RECEIPT_COUNT_PROPERTIES, decision.counts, strict=True))
    if decision.status is not None:
        update |= {"Status": decision.status.value, "UpdatedAt": now}
    return update
