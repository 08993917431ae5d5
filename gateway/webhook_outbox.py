"""The webhook outbox: every event stored before it is sent, and what became of each send (docs/webhooks.md).

Table ``<prefix>WebhookEvents``: PartitionKey = the licensee id (hex), so a licensee's events are one partition
and another's are never read. Two kinds of rows:

* an event, RowKey = its id (``evt_…``): ``Type``, ``Body`` (the JSON sent), ``CommId``, ``CreatedAt``,
  ``Status`` (``Pending``, ``Delivered``, ``Failed``), ``Attempts``, ``FirstAttemptAt``, ``LastAttemptAt``,
  ``NextAttemptAt``, ``LastError`` (an HTTP status or an error class: never a body or a secret);
* while an event is ``Failed``, an index row, RowKey = ``failed_<inverted time>_<id>``, written and deleted in
  the same transaction as the event's status, so the failed list is one range query, newest first.

``publish`` inserts events if absent, in entity-group transactions of at most 100 (one per licensee and chunk),
then writes one queue message per chunk. Publishing again (a retried run, the sweep) inserts nothing new and
queues again only what is still ``Pending``, so an event whose queue message was lost in a crash is sent after all.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, TableTransactionError, UpdateMode

from gateway.connections import TableStore
from gateway.storage import TRANSACTION_LIMIT, utcnow
from gateway.webhook_events import EndpointDirectory, WebhookEvent
from gateway.webhook_queue import WebhookQueue

log = logging.getLogger("gateway.webhooks")

PENDING, DELIVERED, FAILED = "Pending", "Delivered", "Failed"
FAILED_PREFIX = "failed_"
EVENT_PREFIX = "evt_"
IDS_PER_QUERY = 14  # Table Storage allows 15 comparisons in a filter; the partition takes one
INSERT_TRIES = 3  # a concurrent publish of the same events can make an insert meet them once more
MAX_TICKS = 10**19 - 1
FAILED_PAGE = 100


class EventNotFound(LookupError):
    """No such event for this licensee."""


class EventNotFailed(ValueError):
    """Only a Failed event can be sent again: a Pending one is on its way, a Delivered one arrived."""


@dataclass(frozen=True)
class StoredEvent:
    """One event row: what is sent, and what became of it so far."""

    licensee_id: uuid.UUID
    event_id: str
    type: str
    body: str
    status: str
    attempts: int
    created_at: datetime
    comm_id: str = ""
    last_error: str = ""
    first_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    failed_at: datetime | None = None
    etag: str | None = None


@dataclass(frozen=True)
class AttemptFailed:
    """A failed attempt to record: the event, its error, and either when it is tried next or that it failed."""

    event: StoredEvent
    error: str
    next_attempt_at: datetime | None  # None: retries are over, the event is Failed
    attempted: bool = True  # False: abandoned without a send (its queue message could not be processed)


class WebhookOutbox(TableStore):
    """The EventSink the state changes publish to, and the store the dispatcher and the routes read and update."""

    def __init__(self, service: TableServiceClient, table_name: str, queue: WebhookQueue,
                 endpoints: EndpointDirectory, clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(service, table_name)
        self._queue = queue
        self._endpoints = endpoints
        self._clock = clock

    # --- publishing (EventSink) ----------------------------------------------------------------------------------

    def wants(self, licensee_id: uuid.UUID) -> bool:
        """Whether the licensee's events go anywhere (a cached look-up): without, a change writes no mark."""
        return self._endpoints.find(licensee_id) is not None

    def publish(self, events: Sequence[WebhookEvent]) -> None:
        """Store the events (idempotent by id) and queue the ones still pending; a licensee without an endpoint
        costs no storage call. Raises when storage fails, so the caller's own retry publishes them again."""
        by_licensee: dict[uuid.UUID, list[WebhookEvent]] = {}
        for event in events:
            by_licensee.setdefault(event.licensee_id, []).append(event)
        for licensee_id, own in by_licensee.items():
            if self._endpoints.find(licensee_id) is None:
                continue
            unique = list({event.event_id: event for event in own}.values())
            for start in range(0, len(unique), TRANSACTION_LIMIT):
                pending = self._insert_absent(licensee_id, unique[start:start + TRANSACTION_LIMIT])
                if pending:
                    self._queue.enqueue(licensee_id, pending)

    def _insert_absent(self, licensee_id: uuid.UUID, events: Sequence[WebhookEvent]) -> list[str]:
        """Insert the events not stored yet, in one transaction; the ids of those still Pending afterwards."""
        wanted = [event.event_id for event in events]
        existing: dict[str, StoredEvent] = {}
        for _ in range(INSERT_TRIES):
            new = [event for event in events if event.event_id not in existing]
            if not new:
                break
            try:
                self._table.submit_transaction([("create", self._entity(event)) for event in new])
                break
            except TableTransactionError as error:
                if getattr(error, "error_code", None) != "EntityAlreadyExists":
                    raise
            existing = {stored.event_id: stored for stored in self.find_many(licensee_id, wanted)}
        else:
            raise RuntimeError(f"licensee {licensee_id.hex}: events kept appearing while being inserted")
        return [event_id for event_id in wanted if event_id not in existing or existing[event_id].status == PENDING]

    def _entity(self, event: WebhookEvent) -> dict[str, Any]:
        return {"PartitionKey": event.licensee_id.hex, "RowKey": event.event_id, "Type": event.type.value,
                "Body": json.dumps(event.body(), separators=(",", ":"), ensure_ascii=False),
                "CommId": str(event.data.get("CommId") or ""), "Status": PENDING, "Attempts": 0,
                "CreatedAt": self._clock()}

    # --- reading -------------------------------------------------------------------------------------------------

    def get(self, licensee_id: uuid.UUID, event_id: str) -> StoredEvent | None:
        if not event_id.startswith(EVENT_PREFIX):
            return None
        try:
            return _stored(self._table.get_entity(licensee_id.hex, event_id))
        except ResourceNotFoundError:
            return None

    def find_many(self, licensee_id: uuid.UUID, event_ids: Sequence[str]) -> list[StoredEvent]:
        """The stored events among ``event_ids``, in their order: a query per ``IDS_PER_QUERY`` ids."""
        found: dict[str, StoredEvent] = {}
        ids = [each for each in dict.fromkeys(event_ids) if each.startswith(EVENT_PREFIX)]
        for start in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[start:start + IDS_PER_QUERY]
            names = [f"r{position}" for position in range(len(chunk))]
            keys = " or ".join(f"RowKey eq @{name}" for name in names)  # spaced: the SDK substitutes whole words
            parameters = {"pk": licensee_id.hex, **dict(zip(names, chunk, strict=True))}
            rows = self._table.query_entities(f"PartitionKey eq @pk and ( {keys} )", parameters=parameters)
            found.update((row["RowKey"], _stored(row)) for row in rows)
        return [found[each] for each in ids if each in found]

    def failed(self, licensee_id: uuid.UUID, limit: int = FAILED_PAGE) -> list[StoredEvent]:
        """The licensee's Failed events, newest first, at most ``limit``: one page of one range query."""
        pages = self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end", results_per_page=limit,
            parameters={"pk": licensee_id.hex, "start": FAILED_PREFIX, "end": FAILED_PREFIX[:-1] + "`"}).by_page()
        try:
            return [_stored(row) for row in next(pages, [])][:limit]
        except ResourceNotFoundError:
            return []

    # --- what became of a send -----------------------------------------------------------------------------------

    def mark_delivered(self, event: StoredEvent, at: datetime) -> None:
        """The endpoint took the event (2xx); a row changed meanwhile (another worker sent it too) is left as is."""
        self._merge(event, {"Status": DELIVERED, "Attempts": event.attempts + 1, "LastAttemptAt": at,
                            "LastError": "", "FirstAttemptAt": event.first_attempt_at or at})

    def record_failures(self, failures: Sequence[AttemptFailed], at: datetime) -> None:
        """One failed attempt for each event (of one licensee), in transactions of at most 100 operations: an
        event still retried gets its next time, one out of retries becomes Failed with its index row."""
        operations: list[Any] = []
        for failure in failures:
            event, attempts = failure.event, failure.event.attempts + int(failure.attempted)
            fields: dict[str, Any] = {"PartitionKey": event.licensee_id.hex, "RowKey": event.event_id,
                                      "Attempts": attempts, "LastError": failure.error[:500]}
            if failure.attempted:
                fields.update(LastAttemptAt=at, FirstAttemptAt=event.first_attempt_at or at)
            group = [("update", fields, {"mode": UpdateMode.MERGE})]
            if failure.next_attempt_at is not None:
                fields["NextAttemptAt"] = failure.next_attempt_at
            else:
                fields.update(Status=FAILED, FailedAt=at)
                failed = replace(event, attempts=attempts, last_error=fields["LastError"], status=FAILED,
                                 last_attempt_at=fields.get("LastAttemptAt", event.last_attempt_at),
                                 first_attempt_at=fields.get("FirstAttemptAt", event.first_attempt_at), failed_at=at)
                group.append(("upsert", _index_row(failed), {"mode": UpdateMode.REPLACE}))
            if len(operations) + len(group) > TRANSACTION_LIMIT:
                self._table.submit_transaction(operations)
                operations = []
            operations += group
        if operations:
            self._table.submit_transaction(operations)

    def retry(self, licensee_id: uuid.UUID, event_id: str) -> StoredEvent:
        """Send a Failed event again, with a new schedule of retries: Pending, its index row gone, queued."""
        event = self.get(licensee_id, event_id)
        if event is None:
            raise EventNotFound(event_id)
        if event.status != FAILED:
            raise EventNotFailed(f"the event is {event.status}, not {FAILED}")
        again = replace(event, status=PENDING, attempts=0, first_attempt_at=None, last_attempt_at=None,
                        next_attempt_at=None, failed_at=None)
        operations: list[Any] = [("update", _event_row(again), {"mode": UpdateMode.REPLACE, "etag": event.etag,
                                                                "match_condition": MatchConditions.IfNotModified})]
        if event.failed_at is not None:
            operations.append(("delete", _index_row(event)))
        try:
            self._table.submit_transaction(operations)
        except TableTransactionError as error:
            if getattr(error, "error_code", None) in ("UpdateConditionNotSatisfied", "ResourceNotFound"):
                raise EventNotFailed("the event changed meanwhile") from None
            raise
        self._queue.enqueue(licensee_id, [event_id])
        log.info("licensee %s: webhook event %s queued again", licensee_id.hex, event_id)
        return again

    def abandon(self, licensee_id: uuid.UUID, event_ids: Sequence[str], reason: str) -> int:
        """Mark the events still Pending as Failed (their queue message could not be processed); how many."""
        now = self._clock()
        pending = [event for event in self.find_many(licensee_id, event_ids) if event.status == PENDING]
        self.record_failures([AttemptFailed(event, reason, None, attempted=False) for event in pending], now)
        return len(pending)

    def _merge(self, event: StoredEvent, fields: Mapping[str, Any]) -> None:
        entity = {"PartitionKey": event.licensee_id.hex, "RowKey": event.event_id, **fields}
        try:
            self._table.update_entity(entity, mode=UpdateMode.MERGE, etag=event.etag,
                                      match_condition=MatchConditions.IfNotModified)
        except HttpResponseError as error:
            if error.status_code not in (404, 412):
                raise
            log.info("licensee %s: webhook event %s changed meanwhile; left as it is", event.licensee_id.hex,
                     event.event_id)


def _event_row(event: StoredEvent) -> dict[str, Any]:
    """The event row, whole (a REPLACE writes exactly these columns)."""
    row = {"PartitionKey": event.licensee_id.hex, "RowKey": event.event_id, "Type": event.type, "Body": event.body,
           "CommId": event.comm_id, "Status": event.status, "Attempts": event.attempts, "CreatedAt": event.created_at,
           "LastError": event.last_error, "FirstAttemptAt": event.first_attempt_at,
           "LastAttemptAt": event.last_attempt_at, "NextAttemptAt": event.next_attempt_at, "FailedAt": event.failed_at}
    return {name: value for name, value in row.items() if value is not None}


def _index_row(event: StoredEvent) -> dict[str, Any]:
    """The failed-list row of a Failed event: newest first by an inverted time, with what the list shows."""
    assert event.failed_at is not None
    return {"PartitionKey": event.licensee_id.hex, "RowKey": failed_row_key(event.event_id, event.failed_at),
            "EventId": event.event_id, "Type": event.type, "Body": event.body, "CommId": event.comm_id,
            "Status": FAILED, "Attempts": event.attempts, "LastError": event.last_error,
            "CreatedAt": event.created_at, "FirstAttemptAt": event.first_attempt_at,
            "LastAttemptAt": event.last_attempt_at, "FailedAt": event.failed_at}


def failed_row_key(event_id: str, failed_at: datetime) -> str:
    """The RowKey of a Failed event's failed-list row: newest first by an inverted time (retention finds it so)."""
    ticks = MAX_TICKS - int(failed_at.timestamp() * 1_000_000)
    return f"{FAILED_PREFIX}{ticks:019d}_{event_id}"


def _stored(row: Mapping[str, Any]) -> StoredEvent:
    metadata = getattr(row, "metadata", None) or {}
    return StoredEvent(
        licensee_id=uuid.UUID(row["PartitionKey"]), event_id=str(row.get("EventId") or row["RowKey"]),
        type=str(row.get("Type") or ""), body=str(row.get("Body") or ""), status=str(row.get("Status") or PENDING),
        attempts=int(row.get("Attempts") or 0), created_at=row["CreatedAt"], comm_id=str(row.get("CommId") or ""),
        last_error=str(row.get("LastError") or ""), first_attempt_at=row.get("FirstAttemptAt"),
        last_attempt_at=row.get("LastAttemptAt"), next_attempt_at=row.get("NextAttemptAt"),
        failed_at=row.get("FailedAt"), etag=metadata.get("etag"))


