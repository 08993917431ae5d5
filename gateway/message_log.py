"""The message log index: every communication listed by licensee, by day and by each recipient's number, so the log
API pages a licensee's communications newest first (all of them, or those sent to one number) and retention finds
the old ones, each with range reads, never a scan.

Table ``<prefix>MessageLog``, three kinds of partition:

* by licensee: PartitionKey = the licensee id (hex), RowKey = the accept time inverted (``newest_first_key``) then
  ``-`` and the CommId, so one range query reads a licensee's communications newest first; ``CommId``, ``CreatedAt``.
* by day: PartitionKey = ``t`` and the accept day (``tYYYYMMDD``, UTC; ``t`` sorts after every hex digit, so no
  licensee partition falls in a range of days), RowKey = the accept time (``HHMMSSffffff``) then ``-`` and the CommId;
  ``CommId``, ``LicenseeId``, ``CreatedAt`` and ``Numbers`` (the recipients' numbers, space-separated: what
  retention deletes the number rows by, even for an accept that failed before its header). Retention reads the past
  days' partitions oldest first.
* by recipient: PartitionKey = ``p`` and the licensee id (``p`` sorts after every hex digit and before ``t``: never
  a licensee's partition, never in the days' range), RowKey = the recipient's number (E.164, as validation stores
  it), ``-``, then the licensee row's RowKey; ``CommId``, ``CreatedAt``. One range query reads the communications
  sent to one number newest first; a send's rows share the partition, so they go in transactions of 100.

Every row is written (upserts) before the communication's header at accept, like the schedule index: a header
without its rows would be hidden from the log and never expire, while rows without a header (an accept that failed,
or a candidate reference that was taken) are skipped by every reader, which checks each row against its header's
``CreatedAt``, and deleted by retention when their day comes. docs/storage.md has the layout, docs/log.md the API.
"""

from __future__ import annotations

import contextlib
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient, TableTransactionError, UpdateMode

from gateway.connections import TableStore
from gateway.storage import TRANSACTION_LIMIT

DAY_PREFIX = "t"  # after "0-9a-f": a day partition never sorts among the licensees' hex partitions
NUMBER_PREFIX = "p"  # after "0-9a-f" and before "t": a number partition is neither a licensee's nor in the days' range
NUMBER_SEPARATOR = "-"  # sorts before every digit: "+441-" never falls among "+4412..."'s rows
NEWEST_FIRST_MAX = 10**17 - 1  # microseconds since 1970, inverted; 17 digits last until the year 5138
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class LogEntry:
    """One communication as the log lists it: who owns it, and the accept time its rows are keyed by."""

    licensee_id: uuid.UUID
    comm_id: uuid.UUID
    created_at: datetime
    numbers: tuple[str, ...] = ()  # the recipients' numbers (E.164): its rows by recipient


def micros_of(when: datetime) -> int:
    """``when`` in whole microseconds since 1970 (UTC): what both kinds of key are made of."""
    delta = when.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def newest_first_key(when: datetime) -> str:
    """The licensee row's time prefix: a later time sorts first (a time before 1970 or after 5138, which only a
    query's bound can be, is taken as the end it is past)."""
    return f"{NEWEST_FIRST_MAX - min(max(micros_of(when), 0), NEWEST_FIRST_MAX):017d}"


def licensee_row_key(entry: LogEntry) -> str:
    return f"{newest_first_key(entry.created_at)}-{entry.comm_id.hex}"


def number_partition(licensee_id: uuid.UUID) -> str:
    return NUMBER_PREFIX + licensee_id.hex


def number_prefix(number: str) -> str:
    """What every RowKey of ``number``'s rows starts with: the number and the separator."""
    return number + NUMBER_SEPARATOR


def number_row_key(number: str, entry: LogEntry) -> str:
    return number_prefix(number) + licensee_row_key(entry)


def day_keys(entry: LogEntry) -> tuple[str, str]:
    """The day row's PartitionKey (``t`` and the UTC day) and RowKey (the time of day, then the CommId)."""
    when = entry.created_at.astimezone(UTC)
    return DAY_PREFIX + when.strftime("%Y%m%d"), f"{when.strftime('%H%M%S%f')}-{entry.comm_id.hex}"


def same_instant(first: datetime, second: datetime) -> bool:
    """Whether two stored times are the same to the microsecond (a row is its header's only when they are)."""
    return micros_of(first) == micros_of(second)


class MessageLog(TableStore):
    """Writes, reads and deletes the log's rows; docs/storage.md has the layout."""

    def __init__(self, service: TableServiceClient, table_name: str, *, concurrency: int = 1) -> None:
        super().__init__(service, table_name)
        # Writes the day row and the number rows while the caller writes the licensee's: an accept waits one round
        # trip for them all while they fit the pool.
        self._pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="message-log")

    def add(self, entry: LogEntry) -> None:
        """Write every row at once, before the header, so nothing accepted is hidden or left never to expire: the day
        row and the number rows (a transaction per 100 numbers) on the pool while this thread writes the licensee's,
        so an accept waits about one round trip for them all (``concurrency`` permitting)."""
        partition, row = day_keys(entry)
        day = {"PartitionKey": partition, "RowKey": row, "CommId": entry.comm_id.hex,
               "LicenseeId": entry.licensee_id.hex, "CreatedAt": entry.created_at}
        if entry.numbers:
            day["Numbers"] = " ".join(entry.numbers)  # 1,000 numbers of 16 characters fit one property
        writes = [self._pool.submit(self._table.upsert_entity, day, mode=UpdateMode.REPLACE)]
        writes += [self._pool.submit(self._table.submit_transaction, batch) for batch in _number_batches(entry)]
        try:
            self._table.upsert_entity({"PartitionKey": entry.licensee_id.hex, "RowKey": licensee_row_key(entry),
                                       "CommId": entry.comm_id.hex, "CreatedAt": entry.created_at},
                                      mode=UpdateMode.REPLACE)
        finally:
            for write in writes:
                write.exception()  # wait for every write, failed or not, before answering
        for write in writes:
            write.result()

    def newest_first(self, licensee_id: uuid.UUID, start: str, stop: str, limit: int,
                     number: str | None = None) -> list[tuple[str, LogEntry]]:
        """Up to ``limit`` of the licensee's rows (only those sent to ``number``, when given) whose time-and-CommId
        part of the RowKey is in ``start < key < stop``, newest first, with that part: one range query in one
        partition (a request of ``limit`` rows)."""
        partition, prefix = (licensee_id.hex, "") if number is None else (number_partition(licensee_id),
                                                                           number_prefix(number))
        query = "PartitionKey eq @pk and RowKey gt @start and RowKey lt @stop"
        parameters = {"pk": partition, "start": prefix + start, "stop": prefix + stop}
        rows: list[tuple[str, LogEntry]] = []
        for entity in self._table.query_entities(query, parameters=parameters, results_per_page=limit,
                                                 select=["RowKey", "CommId", "CreatedAt"]):
            rows.append((entity["RowKey"][len(prefix):],
                         LogEntry(licensee_id, uuid.UUID(entity["CommId"]), entity["CreatedAt"])))
            if len(rows) >= limit:
                break
        return rows

    def older_than(self, cutoff: datetime, limit: int) -> list[LogEntry]:
        """Up to ``limit`` day rows of communications accepted before ``cutoff``, oldest first: one range query over
        the day partitions up to ``cutoff``'s (once retention has caught up, the days before hold nothing)."""
        query = "PartitionKey ge @first and PartitionKey le @day and CreatedAt lt @cutoff"
        parameters = {"first": DAY_PREFIX, "day": DAY_PREFIX + cutoff.astimezone(UTC).strftime("%Y%m%d"),
                      "cutoff": cutoff}
        entries: list[LogEntry] = []
        for entity in self._table.query_entities(query, parameters=parameters, results_per_page=limit):
            entries.append(LogEntry(uuid.UUID(entity["LicenseeId"]), uuid.UUID(entity["CommId"]),
                                    entity["CreatedAt"], tuple((entity.get("Numbers") or "").split())))
            if len(entries) >= limit:
                break
        return entries

    def remove(self, entry: LogEntry) -> None:
        """Delete every row, the day's last: it is what retention finds (and what names the numbers), so a run cut
        off half-way comes back. The number rows go in transactions of 100; a batch that meets a row already gone
        (a run cut off, an accept that failed before writing them) is deleted row by row instead."""
        for batch in _number_batches(entry, delete=True):
            try:
                self._table.submit_transaction(batch)
            except TableTransactionError as error:
                if error.error_code != "ResourceNotFound":
                    raise
                for _, row in batch:
                    with contextlib.suppress(ResourceNotFoundError):
                        self._table.delete_entity(row["PartitionKey"], row["RowKey"])
        with contextlib.suppress(ResourceNotFoundError):
            self._table.delete_entity(entry.licensee_id.hex, licensee_row_key(entry))
        with contextlib.suppress(ResourceNotFoundError):
            self._table.delete_entity(*day_keys(entry))


def _number_batches(entry: LogEntry, *, delete: bool = False) -> list[list[tuple]]:
    """The entry's rows by recipient as entity-group transactions of at most 100 (one partition: the licensee's
    numbers): upserts to write them, deletes to remove them. A number given twice is one row."""
    partition = number_partition(entry.licensee_id)
    rows = [{"PartitionKey": partition, "RowKey": number_row_key(number, entry)}
            for number in dict.fromkeys(entry.numbers)]
    if delete:
        operations: list[tuple] = [("delete", row) for row in rows]
    else:
        operations = [("upsert", {**row, "CommId": entry.comm_id.hex, "CreatedAt": entry.created_at},
                       {"mode": UpdateMode.REPLACE}) for row in rows]
    return [operations[start : start + TRANSACTION_LIMIT] for start in range(0, len(operations), TRANSACTION_LIMIT)]
