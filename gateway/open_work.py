"""The index of open work: a row per communication not yet final, and per webhook mark not in its partition, so the
sweep reads what is open and never scans the communications table (issue 17; docs/delivery.md, "What the sweep
costs").

Table ``<prefix>OpenWork``: PartitionKey the CommId (so no partition is hot: writes spread as the communications'
do), RowKey ``comm`` for the communication or a mark's RowKey (``w<hash>``) for a change's webhook events, with
``DueAt``, when the sweep should next look at it. The table holds open work only, so the sweep's one filtered query
(``DueAt lt now``) costs pages in proportion to the open work, not to the traffic ever sent.

Write order (docs/storage.md): a communication's row is written BEFORE its header (``CommunicationStore.create``,
with its other index rows at once: ``gateway/listing.py``),
and deleted only AFTER it is final and a read after its final change's publish finds no webhook mark left in its
partition (``Delivery._close``, ``CommunicationStore.finish``);
a mark's row is written BEFORE the change it marks, and deleted after its events are published. So work without
its row cannot exist; a row without its work (the accept failed, a delete was lost) costs the sweep one read and
one delete.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from gateway.connections import TableStore
from gateway.storage import Communication, EventMark, utcnow

COMM_ROW = "comm"
SWEEP_BATCH = 500  # rows one sweep takes at most; the rest (the latest due) wait for the next run


@dataclass(frozen=True)
class OpenItem:
    """A row of open work: a communication (``mark`` None) or a change's webhook events, due at ``due``."""

    comm_id: uuid.UUID
    due: datetime
    mark: EventMark | None = None


class OpenWork(TableStore):
    """The rows of open work, by communication, each with when it is next due a look (``quiet`` after a change)."""

    def __init__(self, service: TableServiceClient, table_name: str, quiet: timedelta) -> None:
        super().__init__(service, table_name)
        self.quiet = quiet

    def list_communication(self, comm: Communication) -> None:
        """List a communication not yet final, due a look a quiet time after its accept (or a scheduled send's
        SendAt, if later): what an accept writes before its header (``gateway/listing.py``)."""
        if not comm.status.is_final:
            self.open(comm.comm_id, max(comm.created_at, comm.send_at or comm.created_at))

    def open(self, comm_id: uuid.UUID, since: datetime) -> None:
        """List the communication, due a look ``quiet`` after ``since`` (its accept, or a scheduled send's SendAt)."""
        self._table.upsert_entity({"PartitionKey": comm_id.hex, "RowKey": COMM_ROW, "DueAt": since + self.quiet},
                                  mode=UpdateMode.REPLACE)

    def close(self, comm_id: uuid.UUID) -> None:
        """Delete the communication's row (one already gone is fine)."""
        self._table.delete_entity(comm_id.hex, COMM_ROW)

    def defer(self, comm_id: uuid.UUID, due: datetime) -> None:
        """Move the communication's next look to ``due``; a row deleted meanwhile (it went final) stays deleted."""
        entity = {"PartitionKey": comm_id.hex, "RowKey": COMM_ROW, "DueAt": due}
        try:
            self._table.update_entity(entity, mode=UpdateMode.MERGE)
        except ResourceNotFoundError:
            return

    def list_mark(self, mark: EventMark) -> EventMark:
        """List a change's mark here instead of in its partition, before the change is written; returns it listed.

        Due a quiet time from now, not from the change's own time (a provider's, maybe long past): the sweep must
        not take the mark up while its change is still being written.
        """
        listed = dataclasses.replace(mark, listed=True)
        self._table.upsert_entity({"PartitionKey": mark.comm_id.hex, "RowKey": mark.row_key,
                                   "EventIds": " ".join(mark.event_ids), "ChangedAt": mark.changed_at,
                                   "DueAt": max(mark.changed_at, utcnow()) + self.quiet}, mode=UpdateMode.REPLACE)
        return listed

    def close_mark(self, mark: EventMark) -> None:
        self._table.delete_entity(mark.comm_id.hex, mark.row_key)

    def due(self, now: datetime, limit: int = SWEEP_BATCH) -> Iterable[OpenItem]:
        """The rows due at ``now``, at most ``limit``: one filtered query over a table that holds open work only."""
        entities = self._table.query_entities("DueAt le @now", parameters={"now": now},
                                              results_per_page=min(limit, 1000))
        for count, entity in enumerate(entities):
            if count >= limit:
                return
            yield _item_of(entity)


def _item_of(entity: Any) -> OpenItem:
    comm_id = uuid.UUID(entity["PartitionKey"])
    if entity["RowKey"] == COMM_ROW:
        return OpenItem(comm_id, entity["DueAt"])
    mark = EventMark(comm_id, tuple(entity["EventIds"].split()), entity["ChangedAt"], listed=True)
    return OpenItem(comm_id, entity["DueAt"], mark)
