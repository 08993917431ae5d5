"""The schedule index: a row per communication waiting for its SendAt, so a scheduled send whose queue message was
lost is still found, without a scan of the communications table.

Table ``<prefix>Schedule``: PartitionKey the due day (``YYYYMMDD``, UTC), RowKey the due time (``HHMMSSffffff``)
and the CommId, so rows sort by when they are due. A row is written before its communication's header at accept
(a header without its row could wait for good; a row without its header is dropped by the sweep) and deleted once
the communication leaves Scheduled (released at SendAt by its run, or canceled). The sweep reads what is due in one
range query (``due``): the past days' partitions hold only rows whose release failed or never ran.
docs/storage.md has the layout, docs/messages.md the behaviour.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from gateway.connections import TableStore
from gateway.queue import MAX_DELAY_SECONDS

SWEEP_BATCH = 100  # rows the sweep takes in one run at most; more wait for the next run, a minute later


@dataclass(frozen=True)
class ScheduledSend:
    """A communication due at ``due`` (its SendAt)."""

    comm_id: uuid.UUID
    due: datetime


def schedule_keys(comm_id: uuid.UUID, due: datetime) -> tuple[str, str]:
    """The index row's PartitionKey (the due day) and RowKey (the due time, then the CommId)."""
    return due.strftime("%Y%m%d"), f"{due.strftime('%H%M%S%f')}-{comm_id.hex}"


def wait_seconds(due: datetime, now: datetime) -> int:
    """How long a queue message for a send due at ``due`` stays out of sight: the rest of the wait, at most what a
    queue allows (``MAX_DELAY_SECONDS``: a send further ahead comes back early and waits again)."""
    return max(0, min(MAX_DELAY_SECONDS, math.ceil((due - now).total_seconds())))


class ScheduleIndex(TableStore):
    """The rows of the scheduled sends still waiting, by when they are due."""

    def add(self, send: ScheduledSend) -> None:
        partition, row = schedule_keys(send.comm_id, send.due)
        self._table.upsert_entity({"PartitionKey": partition, "RowKey": row, "CommId": send.comm_id.hex,
                                   "DueAt": send.due}, mode=UpdateMode.REPLACE)

    def remove(self, send: ScheduledSend) -> None:
        """Delete the row (one already gone is fine: another run or the sweep removed it)."""
        partition, row = schedule_keys(send.comm_id, send.due)
        with contextlib.suppress(ResourceNotFoundError):
            self._table.delete_entity(partition, row)

    def due(self, before: datetime, limit: int = SWEEP_BATCH) -> Iterable[ScheduledSend]:
        """The rows due before ``before``, oldest first, at most ``limit``: one range query over the day partitions up
        to ``before``'s (the days before hold only overdue rows; today's are filtered on their time)."""
        query = "PartitionKey le @day and DueAt lt @before"
        parameters = {"day": before.strftime("%Y%m%d"), "before": before}
        for count, entity in enumerate(self._table.query_entities(query, parameters=parameters,
                                                                  results_per_page=limit)):
            if count >= limit:
                return
            yield ScheduledSend(uuid.UUID(entity["CommId"]), _due_of(entity["PartitionKey"], entity["RowKey"]))


def _due_of(partition: str, row: str) -> datetime:
    """The due time a row's keys say: exactly what ``schedule_keys`` wrote, so ``remove`` finds the row again."""
    return datetime.strptime(partition + row[:12], "%Y%m%d%H%M%S%f").replace(tzinfo=UTC)
