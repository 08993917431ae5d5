"""The opt-out list: per licensee, the numbers that asked not to be sent to (docs/replies.md, "Opt-out").

A provider's own opt-out list is per sender number (and absent for alphanumeric senders), so a recipient who
texts STOP to one of a licensee's numbers would still get messages from its others; the gateway keeps its own.
Delivery asks ``suppressed`` for each batch just before claiming it, so a number opted out after the send was
accepted is still never sent to; the recipient ends ``OptedOut`` with no provider call.

Table ``<prefix>OptOuts``: PartitionKey = the licensee id (hex), RowKey = the number in E.164, with ``Reason``
(the keyword, ``21610``, ``api``…), ``Source`` (``keyword``, ``twilio``, ``acs``, ``api``, ``cli``) and ``At`` (UTC).
A licensee's numbers are one partition: listing them is one query, and another licensee's are never read.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from gateway.connections import TableStore
from gateway.redact import mask_phone
from gateway.storage import utcnow

log = logging.getLogger("gateway.optouts")

NUMBERS_PER_QUERY = 14
"""Numbers a query names: Table Storage allows 15 comparisons in a filter, and the partition takes one."""


@dataclass(frozen=True)
class OptOut:
    """One suppressed number of a licensee: since when, why, and who said so."""

    number: str  # E.164
    reason: str
    source: str
    at: datetime


class OptOutList(TableStore):
    """Reads and writes the licensees' opt-out lists; every method is scoped to one licensee's partition."""

    def __init__(self, service: TableServiceClient, table_name: str, clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(service, table_name)
        self._clock = clock

    def add(self, licensee_id: uuid.UUID, number: str, *, reason: str, source: str) -> None:
        """Suppress ``number`` (E.164) for the licensee; adding it again records the latest reason and time."""
        entity = {"PartitionKey": licensee_id.hex, "RowKey": number, "Reason": reason[:200], "Source": source[:50],
                  "At": self._clock()}
        self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        log.info("licensee %s: %s opted out (%s, from %s)", licensee_id.hex, mask_phone(number), reason, source)

    def remove(self, licensee_id: uuid.UUID, number: str, *, source: str) -> None:
        """Send to ``number`` again; removing a number that is not listed does nothing."""
        self._table.delete_entity(licensee_id.hex, number)
        log.info("licensee %s: %s opted back in (from %s)", licensee_id.hex, mask_phone(number), source)

    def find(self, licensee_id: uuid.UUID, number: str) -> OptOut | None:
        """The licensee's entry for ``number``: one point read."""
        try:
            return _opt_out(self._table.get_entity(licensee_id.hex, number))
        except ResourceNotFoundError:
            return None

    def suppressed(self, licensee_id: uuid.UUID, numbers: Iterable[str]) -> set[str]:
        """Which of ``numbers`` the licensee must not send to, in one query: for at most ``NUMBERS_PER_QUERY``
        numbers a query that names them, for more the licensee's partition (keys only, a page per 1,000 listed
        numbers), so a provider batch of any size costs one query while the list is short."""
        wanted = set(numbers)
        if not wanted:
            return set()
        if len(wanted) <= NUMBERS_PER_QUERY:
            names = [f"n{position}" for position in range(len(wanted))]
            keys = " or ".join(f"RowKey eq @{name}" for name in names)  # spaced: the SDK substitutes whole words
            query = f"PartitionKey eq @pk and ( {keys} )"
            parameters = {"pk": licensee_id.hex, **dict(zip(names, sorted(wanted), strict=True))}
        else:
            query, parameters = "PartitionKey eq @pk", {"pk": licensee_id.hex}
        try:
            rows = self._table.query_entities(query, parameters=parameters, select=["RowKey"], results_per_page=1000)
            return {row["RowKey"] for row in rows} & wanted
        except ResourceNotFoundError:  # no list was ever written here: nobody opted out
            return set()

    def list(self, licensee_id: uuid.UUID) -> list[OptOut]:
        """The licensee's numbers, in number order."""
        try:
            rows = list(self._table.query_entities("PartitionKey eq @pk", parameters={"pk": licensee_id.hex},
                                                   results_per_page=1000))
        except ResourceNotFoundError:
            return []
        return [_opt_out(row) for row in rows]


def _opt_out(row: Mapping[str, Any]) -> OptOut:
    return OptOut(row["RowKey"], str(row.get("Reason") or ""), str(row.get("Source") or ""), row["At"])
