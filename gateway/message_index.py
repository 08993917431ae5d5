"""The message-id index: which recipient a provider's message id belongs to, for receipts that name only the id.

A Twilio status callback configured on a Messaging Service arrives without the query string the gateway gives
each message, so the receipt book finds the recipient by the provider's id alone. Delivery writes one row per
message the provider accepted, before it records the batch, so a receipt arriving in between is matched.

Table ``<prefix>MessageIndex``: PartitionKey = the provider's message id (escaped where Table Storage refuses a
character in a key), RowKey = the provider's name, with ``CommId`` and ``Index``. A point read by message id.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple
from urllib.parse import quote

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from gateway.connections import TableStore
from gateway.redact import describe

log = logging.getLogger("gateway.message_index")


class IndexEntry(NamedTuple):
    message_id: str
    comm_id: uuid.UUID
    index: int


def key_of(text: str) -> str:
    """``text`` as a Table Storage key: the characters a key may not hold (``/ \\ # ?``, controls) %-escaped."""
    return quote(text, safe="".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in "/\\#?%")) or "%00"


class MessageIndex(TableStore):
    """Reads and writes the message-id index; writing never fails a delivery (see ``record``)."""

    def record(self, provider: str, entries: Sequence[IndexEntry], *, concurrency: int = 1) -> int:
        """Upsert one row per entry, ``concurrency`` at a time; returns how many could not be written.

        A row that cannot be written is logged and skipped, never raised: the batch's outcomes must still be
        recorded (delivery's guarantees come first), and a receipt for that message can still be matched by
        the CommId and index its callback URL names, or by the missing-receipt check, which knows both.
        """

        def write(entry: IndexEntry) -> bool:
            entity = {"PartitionKey": key_of(entry.message_id), "RowKey": key_of(provider),
                      "CommId": entry.comm_id.hex, "Index": entry.index}
            try:
                self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
            except AzureError as error:
                log.warning("comm %s recipient %d: message id not indexed: %s", entry.comm_id.hex, entry.index,
                            describe(error))
                return False
            return True

        if not entries:
            return 0
        if concurrency <= 1 or len(entries) == 1:
            return sum(not write(entry) for entry in entries)
        with ThreadPoolExecutor(max_workers=min(concurrency, len(entries)), thread_name_prefix="index") as pool:
            return sum(not written for written in pool.map(write, entries))

    def find(self, provider: str, message_id: str) -> tuple[uuid.UUID, int] | None:
        try:
            entity = self._table.get_entity(key_of(message_id), key_of(provider))
        except ResourceNotFoundError:
            return None
        return uuid.UUID(entity["CommId"]), int(entity["Index"])
