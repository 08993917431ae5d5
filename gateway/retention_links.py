"""The rows of other tables retention deletes with a communication, found from its partition without a scan.

* **Webhook events** (``<prefix>WebhookEvents``, the licensee's partition, RowKey the event id): an event's id is a
  function of the communication and the change (``webhook_events.event_id_for``), and which changes happened is
  what the partition's rows say (``webhook_emit``): a final recipient row, a final receipt row, a reply row, the
  communication's completion. So the candidate ids are computed (``event_ids``: at most two per recipient, one per
  reply, one more), looked up 14 to a query in the licensee's partition, and the ones found deleted with the
  ``failed_`` index row of each Failed one, in entity-group transactions of at most 100. A recipient row's final
  state never changes and a receipt's first final state wins (``receipts.RANK``), so the rows' present states
  name every event that was ever made.
* **Open work** (``<prefix>OpenWork``, PartitionKey the CommId): whatever is left there (a stuck communication's
  row, a listed mark): one partition query, one transaction.
* **Receipt checks** (``<prefix>ReceiptChecks``, partition ``due``, RowKey the due time first): a watch row is due
  between the accept and its send plus ``SMS_RECEIPT_GIVE_UP_HOURS``, so one page of one range query over that
  window, filtered by CommId, finds them (only when a recipient was Sent: no other has one). One the page misses is
  dropped by the check itself when due: it finds no communication (``ReceiptChecker._has_final``).

Every delete of a row already gone is fine: a transaction that meets one is done again row by row.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.data.tables import TableClient, TableServiceClient, TableTransactionError

from gateway.comm_events import candidate_ids
from gateway.receipt_checks import PARTITION as DUE_PARTITION
from gateway.receipt_checks import TIME_FORMAT
from gateway.settings import Settings
from gateway.storage import (
    HEADER_ROW,
    RECEIPT_ROW_PREFIX,
    RECIPIENT_ROW_PREFIX,
    REPLY_ROW_PREFIX,
    TRANSACTION_LIMIT,
    RecipientState,
)
from gateway.webhook_emit import RECEIPT_TYPES, RECIPIENT_TYPES
from gateway.webhook_events import EventType
from gateway.webhook_outbox import FAILED, IDS_PER_QUERY, failed_row_key

LINK_COLUMNS = ["Status", "State", "Index", "UpdatedAt"]
"""What the partition read must select besides retention's own columns for these rows to be found."""

FOUND_BY: dict[EventType, str] = {
    **{type_: "a recipient row's final Status (webhook_emit.RECIPIENT_TYPES)" for type_ in RECIPIENT_TYPES.values()},
    **{type_: "a receipt row's final State (webhook_emit.RECEIPT_TYPES)" for type_ in RECEIPT_TYPES.values()},
    EventType.REPLY: "a reply row: its recipient index, provider and message id",
    EventType.COMPLETED: "the communication: one per communication",
}
"""How ``event_ids`` finds each event type's events: a type missing here is a type retention cannot delete."""

CHECK_SLACK = timedelta(hours=1)  # a watch row's send time is taken just after its recipient row's UpdatedAt


@dataclass(frozen=True)
class LinkedTables:
    """The tables whose rows point at a communication from outside its partition, besides retention's own list."""

    webhook_events: TableClient
    open_work: TableClient
    receipt_checks: TableClient
    give_up: timedelta  # SMS_RECEIPT_GIVE_UP_HOURS: the last time a watch row can be due, after its send

    @classmethod
    def of(cls, service: TableServiceClient, settings: Settings) -> LinkedTables:
        return cls(webhook_events=service.get_table_client(settings.webhook_events_table),
                   open_work=service.get_table_client(settings.open_work_table),
                   receipt_checks=service.get_table_client(settings.receipt_checks_table),
                   give_up=timedelta(hours=settings.receipt_give_up_hours))

    def delete(self, comm_id: uuid.UUID, licensee_id: uuid.UUID, rows: Sequence[Any]) -> int:
        """Delete the communication's events, open-work rows and watch rows; how many rows went."""
        return (delete_events(self.webhook_events, licensee_id, event_ids(comm_id, rows))
                + self._delete_open_work(comm_id) + self._delete_watches(comm_id, rows))

    def _delete_open_work(self, comm_id: uuid.UUID) -> int:
        keys = [row["RowKey"] for row in self.open_work.query_entities(
            "PartitionKey eq @pk", parameters={"pk": comm_id.hex}, select=["RowKey"])]
        return _delete_rows(self.open_work, comm_id.hex, [[key] for key in keys])

    def _delete_watches(self, comm_id: uuid.UUID, rows: Sequence[Any]) -> int:
        header = next((row for row in rows if row["RowKey"] == HEADER_ROW), None)
        sent = [row["UpdatedAt"] for row in rows if row["RowKey"].startswith(RECIPIENT_ROW_PREFIX)
                and row.get("Status") == RecipientState.SENT and row.get("UpdatedAt") is not None]
        if header is None or header.get("CreatedAt") is None or not sent:
            return 0
        first: datetime = header["CreatedAt"]
        last: datetime = max(sent) + self.give_up + CHECK_SLACK
        pages = self.receipt_checks.query_entities(
            "PartitionKey eq @pk and RowKey ge @first and RowKey lt @last and CommId eq @comm",
            parameters={"pk": DUE_PARTITION, "first": f"{first:{TIME_FORMAT}}", "last": f"{last:{TIME_FORMAT}}~",
                        "comm": comm_id.hex}, select=["RowKey"], results_per_page=1000).by_page()
        return _delete_rows(self.receipt_checks, DUE_PARTITION, [[row["RowKey"]] for row in next(pages, [])])


def event_ids(comm_id: uuid.UUID, rows: Iterable[Any]) -> list[str]:
    """The ids of every webhook event the communication's rows say may have been made (``FOUND_BY``)."""
    recipients: list[tuple[int, str | None]] = []
    receipts: list[tuple[int, str | None]] = []
    replies: list[tuple[int, str, str]] = []
    for row in rows:
        key = row["RowKey"]
        if key.startswith(RECIPIENT_ROW_PREFIX):
            recipients.append((int(key[len(RECIPIENT_ROW_PREFIX):]), row.get("Status")))
        elif key.startswith(RECEIPT_ROW_PREFIX):
            receipts.append((int(key[len(RECEIPT_ROW_PREFIX):]), row.get("State")))
        elif key.startswith(REPLY_ROW_PREFIX) and row.get("MessageId") and row.get("Index") is not None:
            replies.append((int(row["Index"]), str(row.get("Provider")), str(row["MessageId"])))
    return candidate_ids(comm_id, recipients, receipts, replies)


def delete_events(table: TableClient, licensee_id: uuid.UUID, ids: Sequence[str]) -> int:
    """Delete those of ``ids`` stored in the licensee's partition, and the failed-list row of each Failed one: a
    query per 14 ids, then transactions of at most 100 rows; how many rows went."""
    groups: list[list[str]] = []
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[start:start + IDS_PER_QUERY]
        names = [f"r{position}" for position in range(len(chunk))]
        filter_ = " or ".join(f"RowKey eq @{name}" for name in names)  # spaced: the SDK substitutes whole words
        parameters = {"pk": licensee_id.hex, **dict(zip(names, chunk, strict=True))}
        for row in table.query_entities(f"PartitionKey eq @pk and ( {filter_} )", parameters=parameters,
                                        select=["RowKey", "Status", "FailedAt"]):
            failed = row.get("Status") == FAILED and row.get("FailedAt") is not None
            groups.append([row["RowKey"], *([failed_row_key(row["RowKey"], row["FailedAt"])] if failed else [])])
    return _delete_rows(table, licensee_id.hex, groups)


def _delete_rows(table: TableClient, partition: str, groups: Sequence[Sequence[str]]) -> int:
    """Delete rows of one partition in transactions of at most 100, never splitting a group (an event and its
    failed-list row go together: a run cut off between them would leave the list row with nothing to find it by);
    a transaction that meets a row already gone (a concurrent retry, a run cut off) is done again row by row,
    where a missing row is fine. How many rows went."""
    batches: list[list[str]] = [[]]
    for group in groups:
        if len(batches[-1]) + len(group) > TRANSACTION_LIMIT:
            batches.append([])
        batches[-1].extend(group)
    for keys in batches:
        if not keys:
            continue
        try:
            table.submit_transaction([("delete", {"PartitionKey": partition, "RowKey": key}) for key in keys])
        except TableTransactionError as error:
            if getattr(error, "error_code", None) != "ResourceNotFound":
                raise
            for key in keys:
                table.delete_entity(partition, key)
    return sum(len(group) for group in groups)
