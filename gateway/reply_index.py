"""The reply index: which communication a message from a recipient answers, found with one point read.

SMS carries no reply-to id, so a reply is matched by the pair of numbers: our sender number (the inbound ``To``)
and theirs (the inbound ``From``). Delivery writes, for every recipient a provider accepted, the row of that pair;
a reply reads it. One row per pair, one property per licensee that sent on it (``L<licensee hex>``: the latest
communication) and one for its latest communication with ``ReplyIsAllowed`` (``A<licensee hex>``), each
``"<CommId hex> <index> <sent at, ISO 8601>"``. Writes merge only their licensee's properties, so senders never
read before writing nor overwrite one another's.

Table ``<prefix>ReplyIndex``: PartitionKey = our number, RowKey = theirs, both as digits only (``number_key``: a
short code the send named ``12345`` and the inbound ``To`` ``+12345`` are one key). An alphanumeric sender cannot
be replied to, so it is never indexed.
``match`` applies the rule (docs/replies.md): within the window, one licensee only, its latest communication
with ``ReplyIsAllowed``, else its latest. Several licensees within the window is ambiguous: kept unmatched.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from gateway.connections import TableStore
from gateway.redact import describe, mask_phone
from gateway.storage import TRANSACTION_LIMIT

log = logging.getLogger("gateway.reply_index")

LATEST = "L"  # the licensee's latest communication on the pair
ALLOWED = "A"  # its latest with ReplyIsAllowed
CLOCK_SKEW = timedelta(minutes=5)  # a reply stamped a little before the send it answers (provider clocks) still counts


@dataclass(frozen=True)
class Sent:
    """One message a recipient was sent: what the index remembers of it."""

    licensee_id: uuid.UUID
    comm_id: uuid.UUID
    index: int
    sent_at: datetime
    reply_is_allowed: bool = False


class MatchKind(enum.StrEnum):
    MATCHED = "Matched"
    UNMATCHED = "Unmatched"  # nothing sent on the pair within the window
    AMBIGUOUS = "Ambiguous"  # several licensees sent on the pair within the window: attributed to none


@dataclass(frozen=True)
class Match:
    kind: MatchKind
    sent: Sent | None = None
    licensees: tuple[uuid.UUID, ...] = ()  # every licensee that ever sent on the pair (for keywords)


def number_key(number: str) -> str | None:
    """A number as the index keys it: its digits, without ``+``; None for a sender id that is not a number."""
    digits = number.strip().removeprefix("+")
    return digits if digits.isascii() and digits.isdigit() else None


def match(candidates: Iterable[Sent], at: datetime, window: timedelta) -> Match:
    """The rule, on paper: one licensee within ``window`` before ``at``; its latest ReplyIsAllowed send, else latest."""
    every = list(candidates)
    licensees = tuple(sorted({sent.licensee_id for sent in every}, key=lambda licensee: licensee.hex))
    recent = [sent for sent in every if at - window <= sent.sent_at <= at + CLOCK_SKEW]
    if not recent:
        return Match(MatchKind.UNMATCHED, licensees=licensees)
    if len({sent.licensee_id for sent in recent}) > 1:
        return Match(MatchKind.AMBIGUOUS, licensees=licensees)
    allowed = [sent for sent in recent if sent.reply_is_allowed]
    chosen = max(allowed or recent, key=lambda sent: sent.sent_at)
    return Match(MatchKind.MATCHED, chosen, licensees)


class ReplyIndex(TableStore):
    """Writes the pair's row at send time and reads it for a reply."""

    def record(self, ours: str, theirs: Sequence[tuple[str, Sent]], *, concurrency: int = 1) -> int:
        """Merge each (their number, send) into its pair's row; returns how many could not be written (an
        alphanumeric ``ours``: none is written, none fails).

        Every row of one sender shares a partition, so a batch is one transaction per 100 rows; a transaction
        the service refuses is written again row by row, ``concurrency`` at a time, so one bad row costs only
        itself. Best effort, like the message-id index: a send is recorded whatever happens here; a reply to a
        send whose row is missing is kept unmatched.
        """
        partition = number_key(ours)
        if partition is None or not theirs:
            return 0
        rows = [row for row in (_row(partition, number, sent) for number, sent in theirs) if row is not None]
        unwritten: list[dict[str, str]] = []
        for start in range(0, len(rows), TRANSACTION_LIMIT):
            chunk = rows[start:start + TRANSACTION_LIMIT]
            try:
                self._table.submit_transaction([("upsert", row, {"mode": UpdateMode.MERGE}) for row in chunk])
            except AzureError as error:  # TableTransactionError is one
                log.info("reply index: a transaction of %d rows refused, writing them one by one: %s", len(chunk),
                         describe(error))
                unwritten.extend(chunk)
        if not unwritten:
            return 0
        if concurrency <= 1 or len(unwritten) == 1:
            return sum(not self._write(row) for row in unwritten)
        with ThreadPoolExecutor(max_workers=min(concurrency, len(unwritten)), thread_name_prefix="replies") as pool:
            return sum(not written for written in pool.map(self._write, unwritten))

    def _write(self, row: dict[str, str]) -> bool:
        try:
            self._table.upsert_entity(row, mode=UpdateMode.MERGE)
        except AzureError as error:
            log.warning("reply index: the row of recipient %s not written: %s", mask_phone(row["RowKey"]),
                        describe(error))
            return False
        return True

    def candidates(self, ours: str, theirs: str) -> list[Sent]:
        """What was sent on the pair, per licensee its latest and its latest with ReplyIsAllowed; a point read."""
        partition, row = number_key(ours), number_key(theirs)
        if partition is None or row is None:
            return []
        try:
            entity = self._table.get_entity(partition, row)
        except ResourceNotFoundError:
            return []
        found: list[Sent] = []
        for name, value in entity.items():
            if len(name) != 33 or name[0] not in (LATEST, ALLOWED) or not isinstance(value, str):
                continue
            sent = _parse(name, value)
            if sent is not None:
                found.append(sent)
        return found

    def find(self, ours: str, theirs: str, at: datetime, window: timedelta) -> Match:
        return match(self.candidates(ours, theirs), at, window)


def _row(partition: str, number: str, sent: Sent) -> dict[str, str] | None:
    """The properties one send merges into its pair's row: only its licensee's."""
    row = number_key(number)
    if row is None:
        return None
    value = f"{sent.comm_id.hex} {sent.index} {sent.sent_at.isoformat()}"
    entity = {"PartitionKey": partition, "RowKey": row, LATEST + sent.licensee_id.hex: value}
    if sent.reply_is_allowed:
        entity[ALLOWED + sent.licensee_id.hex] = value
    return entity


def _parse(name: str, value: str) -> Sent | None:
    try:
        comm, index, when = value.split(" ")
        return Sent(uuid.UUID(name[1:]), uuid.UUID(comm), int(index), datetime.fromisoformat(when),
                    reply_is_allowed=name[0] == ALLOWED)
    except ValueError:
        return None
