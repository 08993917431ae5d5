"""Retention: delete communications accepted more than ``SMS_RETENTION_DAYS`` ago, with everything that is theirs.

The retention timer (``SMS_RETENTION_SCHEDULE``) takes at most ``RETENTION_BATCH`` of the oldest communications
from the message log's day rows (``MessageLog.older_than``: one range query, never a scan of the communications
table) and, for each, deletes in this order:

1. the rows that point at it from other tables, found from its own rows: the message-id index row of each message
   the provider accepted (``<prefix>MessageIndex``), the inbound row of each reply attributed to it
   (``<prefix>Inbound``), its schedule row if one is left (``<prefix>Schedule``), its outbox rows (``<prefix>Outbox``,
   the development provider); its webhook events, open-work rows and receipt-check rows (``retention_links``);
2. its partition of ``<prefix>Communications`` (header, recipient, receipt, mark, reply and idempotency rows), in
   entity-group transactions of 100, the header in the last;
3. its message log rows: its rows by recipient (the day row names their numbers; transactions of 100), the
   licensee's row, the day row last.

What a run cut off half-way leaves is found again by the next run (the day row goes last), and every delete of a row
already gone is fine. A day row whose header is missing or younger (an accept that failed, a candidate reference
that was taken) only loses its log rows. Opt-outs (``<prefix>OptOuts``) are the licensee's list, not a
communication's: retention never touches them. docs/log.md says what is not deleted yet and why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from azure.data.tables import TableClient, TableServiceClient

from gateway.message_index import key_of
from gateway.message_log import LogEntry, MessageLog
from gateway.retention_links import LINK_COLUMNS, LinkedTables
from gateway.schedule import schedule_keys
from gateway.settings import Settings
from gateway.storage import HEADER_ROW, RECEIPT_ROW_PREFIX, RECIPIENT_ROW_PREFIX, REPLY_ROW_PREFIX, TRANSACTION_LIMIT

log = logging.getLogger("gateway.retention")

RETENTION_BATCH = 200  # communications one run deletes at most; the rest wait for the next run
PARTITION_COLUMNS = ["RowKey", "ProviderMessageId", "Provider", "MessageId", "LicenseeId", "CreatedAt", "SendAt"]


@dataclass
class RetentionReport:
    """What one run deleted: communications, their rows, the rows of other tables that pointed at them (deletes
    asked: one already gone counts too), and log rows that had no communication (left by an accept that failed)."""

    communications: int = 0
    rows: int = 0
    linked_rows: int = 0
    orphans: int = 0
    deleted: list[str] = field(default_factory=list)  # the CommIds, for the log


@dataclass(frozen=True)
class Tables:
    """The tables a communication has rows in, besides the message log."""

    communications: TableClient
    message_index: TableClient
    inbound: TableClient
    schedule: TableClient
    outbox: TableClient | None  # only with the development provider
    links: LinkedTables  # webhook events, open work, receipt checks

    @classmethod
    def of(cls, service: TableServiceClient, settings: Settings) -> Tables:
        return cls(communications=service.get_table_client(settings.communications_table),
                   message_index=service.get_table_client(settings.message_index_table),
                   inbound=service.get_table_client(settings.inbound_table),
                   schedule=service.get_table_client(settings.schedule_table),
                   outbox=service.get_table_client(settings.outbox_table) if settings.provider == "outbox" else None,
                   links=LinkedTables.of(service, settings))


class Retention:
    """Deletes the communications older than ``days``, a bounded batch per run."""

    def __init__(self, message_log: MessageLog, tables: Tables, *, days: int, provider: str,
                 batch: int = RETENTION_BATCH) -> None:
        self._log = message_log
        self._tables = tables
        self._keep = timedelta(days=days)
        self._provider = provider  # whose message ids the recipient rows hold, when no receipt row names one
        self._batch = batch

    def run(self, now: datetime) -> RetentionReport:
        cutoff = now - self._keep
        report = RetentionReport()
        for entry in self._log.older_than(cutoff, self._batch):
            rows = list(self._tables.communications.query_entities(
                "PartitionKey eq @pk", parameters={"pk": entry.comm_id.hex},
                select=[*PARTITION_COLUMNS, *LINK_COLUMNS]))
            header = next((row for row in rows if row["RowKey"] == HEADER_ROW), None)
            if _belongs(header, entry, cutoff):
                report.linked_rows += self._delete_linked(entry, rows)
                self._delete_partition(entry, rows)
                report.communications += 1
                report.rows += len(rows)
                report.deleted.append(entry.comm_id.hex)
            else:
                report.orphans += 1
            self._log.remove(entry)
        if report.communications or report.orphans:
            log.info("retention deleted %d communications older than %s (%d rows, %d linked rows; %d log rows "
                     "without a communication): %s", report.communications, cutoff.isoformat(), report.rows,
                     report.linked_rows, report.orphans, " ".join(report.deleted))
        return report

    def _delete_linked(self, entry: LogEntry, rows: list[Any]) -> int:
        """The rows of other tables that name this communication, found from its own rows; how many went."""
        deleted = self._tables.links.delete(entry.comm_id, entry.licensee_id, rows)
        for table, partition, row in self._linked_keys(entry, rows):
            deleted += _delete(table, partition, row)
        if self._tables.outbox is not None:
            for row in self._tables.outbox.query_entities("PartitionKey eq @pk", parameters={"pk": entry.comm_id.hex},
                                                          select=["RowKey"]):
                deleted += _delete(self._tables.outbox, entry.comm_id.hex, row["RowKey"])
        return deleted

    def _linked_keys(self, entry: LogEntry, rows: list[Any]) -> Iterable[tuple[TableClient, str, str]]:
        receipts = {row.get("MessageId"): row.get("Provider") for row in rows
                    if row["RowKey"].startswith(RECEIPT_ROW_PREFIX) and row.get("MessageId")}
        message_ids = {row["ProviderMessageId"] for row in rows
                       if row["RowKey"].startswith(RECIPIENT_ROW_PREFIX) and row.get("ProviderMessageId")}
        for message_id in sorted(message_ids | set(receipts)):
            provider = receipts.get(message_id) or self._provider
            yield self._tables.message_index, key_of(message_id), key_of(provider)
        for row in rows:
            if row["RowKey"].startswith(REPLY_ROW_PREFIX) and row.get("MessageId"):
                yield self._tables.inbound, key_of(row["MessageId"]), key_of(row.get("Provider") or self._provider)
            if row["RowKey"] == HEADER_ROW and row.get("SendAt") is not None:
                yield (self._tables.schedule, *schedule_keys(entry.comm_id, row["SendAt"]))

    def _delete_partition(self, entry: LogEntry, rows: list[Any]) -> None:
        """Every row of the partition in transactions of 100, the header in the last: until it goes, the
        communication is still whole enough to be found (and deleted) again."""
        keys = sorted((row["RowKey"] for row in rows), key=lambda key: key == HEADER_ROW)
        for start in range(0, len(keys), TRANSACTION_LIMIT):
            batch = [("delete", {"PartitionKey": entry.comm_id.hex, "RowKey": key})
                     for key in keys[start : start + TRANSACTION_LIMIT]]
            self._tables.communications.submit_transaction(batch)


def _belongs(header: Any, entry: LogEntry, cutoff: datetime) -> bool:
    """Whether the log row's communication exists, is the row's licensee's, and is older than ``cutoff`` (a row
    left by a taken candidate reference points at a communication of another time: that one keeps its own)."""
    return (header is not None and header.get("LicenseeId") == entry.licensee_id.hex
            and header.get("CreatedAt") is not None and header["CreatedAt"] < cutoff)


def _delete(table: TableClient, partition: str, row: str) -> int:
    """Delete one row (one already gone is fine: the SDK answers a 404 on delete as done); counts the request."""
    table.delete_entity(partition, row)
    return 1
