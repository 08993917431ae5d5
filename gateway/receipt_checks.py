"""Missing receipts: ask the provider about messages that are still only ``Sent`` after a while.

Carriers do not always send a receipt. When delivery records a recipient Sent through a provider that can be
asked (a ``ReceiptSource``), it writes a *watch row*: an index of open work, so the timer never scans the
communications table. The timer (``SMS_RECEIPT_CHECK_SCHEDULE``) takes the watch rows that are due, at most
``SMS_RECEIPT_CHECKS_PER_RUN``; drops those whose receipt came meanwhile; asks the provider about the rest and
applies what it says through the receipt book, like any receipt; and asks again later, each wait twice the one
before, until ``SMS_RECEIPT_GIVE_UP_HOURS`` after the send. Then the recipient stays ``Sent``: "no receipt".

Table ``<prefix>ReceiptChecks``, one partition ``due``: RowKey = due time (UTC, ``YYYYmmddHHMMSS``), CommId and
index, so the due rows are the partition's first rows and one range query takes them in order. A row moves to
its next due time by a delete and an insert in the same entity-group transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError
from azure.data.tables import UpdateMode

from gateway.connections import TableStore
from gateway.providers.base import ReceiptSource
from gateway.receipts import RANK, ReceiptBook, ReceiptState
from gateway.redact import describe
from gateway.storage import TRANSACTION_LIMIT, CommunicationStore, RecipientState, utcnow

log = logging.getLogger("gateway.receipt_checks")

PARTITION = "due"
TIME_FORMAT = "%Y%m%d%H%M%S"


@dataclass(frozen=True)
class Watch:
    """One message waiting for its receipt: where its recipient is, and when to ask about it next."""

    comm_id: uuid.UUID
    index: int
    message_id: str
    provider: str
    sent_at: datetime
    due_at: datetime
    checks: int = 0  # how many times the provider was asked already

    @property
    def row_key(self) -> str:
        return f"{self.due_at:{TIME_FORMAT}}-{self.comm_id.hex}-{self.index:05d}"


def watch_entity(watch: Watch) -> dict[str, Any]:
    return {"PartitionKey": PARTITION, "RowKey": watch.row_key, "CommId": watch.comm_id.hex, "Index": watch.index,
            "MessageId": watch.message_id, "Provider": watch.provider, "SentAt": watch.sent_at,
            "DueAt": watch.due_at, "Checks": watch.checks}


def watch_from_entity(entity: Any) -> Watch:
    return Watch(comm_id=uuid.UUID(entity["CommId"]), index=int(entity["Index"]), message_id=entity["MessageId"],
                 provider=entity["Provider"], sent_at=entity["SentAt"], due_at=entity["DueAt"],
                 checks=int(entity.get("Checks") or 0))


@dataclass(frozen=True)
class CheckPolicy:
    """When to ask: first ``after`` the send, then after waits that double, never past ``give_up`` after it."""

    after: timedelta
    give_up: timedelta
    per_run: int

    def first(self, sent_at: datetime) -> datetime:
        return sent_at + self.after

    def next(self, watch: Watch, now: datetime) -> datetime | None:
        """When to ask again after ``watch.checks + 1`` answers that told nothing final; None: give up now."""
        end = watch.sent_at + self.give_up
        if now >= end:
            return None
        return min(now + self.after * 2 ** (watch.checks + 1), end)


class ReceiptChecks(TableStore):
    """The watch rows: written by delivery, taken and moved on by the timer."""

    def watch(self, watches: Sequence[Watch]) -> None:
        """Insert (or overwrite) watch rows, one transaction per 100: a delivery batch is one transaction."""
        self._submit([[_upsert(watch)] for watch in watches])

    def due(self, now: datetime, limit: int) -> list[Watch]:
        """The watch rows due at ``now``, oldest first, at most ``limit``: one page of one range query."""
        pages = self._table.query_entities("PartitionKey eq @pk and RowKey lt @now", results_per_page=limit,
                                           parameters={"pk": PARTITION, "now": f"{now:{TIME_FORMAT}}~"}).by_page()
        return [watch_from_entity(entity) for entity in next(pages, [])][:limit]

    def move(self, done: Sequence[Watch], later: Sequence[tuple[Watch, Watch]]) -> None:
        """Delete ``done`` and move each (old, new) of ``later`` to its new due time; a move's delete and insert
        go in the same transaction, so a row is never lost nor doubled half-way."""
        groups = [[("delete", watch_entity(watch))] for watch in done]
        groups += [[("delete", watch_entity(old)), _upsert(new)] for old, new in later]
        self._submit(groups)

    def _submit(self, groups: list[list[Any]]) -> None:
        """Entity-group transactions of at most 100 operations, never splitting a group."""
        batch: list[Any] = []
        for group in groups:
            if len(batch) + len(group) > TRANSACTION_LIMIT:
                self._table.submit_transaction(batch)
                batch = []
            batch += group
        if batch:
            self._table.submit_transaction(batch)


def _upsert(watch: Watch) -> tuple[Any, ...]:
    return ("upsert", watch_entity(watch), {"mode": UpdateMode.REPLACE})


@dataclass(frozen=True)
class CheckReport:
    taken: int = 0  # watch rows due this run
    answered: int = 0  # the provider said something final, applied
    already: int = 0  # a final receipt (or delivery's Failed) had come meanwhile
    again: int = 0  # asked again later
    given_up: int = 0  # left Sent: no receipt


class ReceiptChecker:
    """The timer's job: one bounded pass over the due watch rows (module docstring)."""

    def __init__(self, checks: ReceiptChecks, store: CommunicationStore, book: ReceiptBook,
                 source: ReceiptSource | None, policy: CheckPolicy, clock: Callable[[], datetime] = utcnow) -> None:
        self._checks = checks
        self._store = store
        self._book = book
        self._source = source
        self._policy = policy
        self._clock = clock

    def run(self) -> CheckReport:
        now = self._clock()
        due = self._checks.due(now, self._policy.per_run)
        done: list[Watch] = []
        later: list[tuple[Watch, Watch]] = []
        answered = already = given_up = 0
        for watch in due:
            if self._has_final(watch):
                done.append(watch)
                already += 1
            elif self._ask(watch):
                done.append(watch)
                answered += 1
            elif (next_at := self._policy.next(watch, now)) is None:
                log.info("comm %s recipient %d: no receipt from %s %d h after the send; left Sent",
                         watch.comm_id.hex, watch.index, watch.provider, self._policy.give_up.total_seconds() // 3600)
                done.append(watch)
                given_up += 1
            elif (moved := replace(watch, due_at=next_at, checks=watch.checks + 1)).row_key in {
                    new.row_key for _, new in later}:
                done.append(watch)  # a second row for one recipient: one transaction cannot write a row twice
            else:
                later.append((watch, moved))
        self._checks.move(done, later)
        report = CheckReport(len(due), answered, already, len(later), given_up)
        if due:
            log.info("receipt checks: %s", report)
        return report

    def _has_final(self, watch: Watch) -> bool:
        """Whether the recipient needs no more asking: a final receipt came, or it is gone or Failed."""
        view = self._store.receipt_view(watch.comm_id, watch.index)
        if view is None or view.recipient_status is RecipientState.FAILED:
            return True
        state = view.receipt.state if view.receipt is not None else None
        return state is not None and RANK[ReceiptState(state)] >= RANK[ReceiptState.DELIVERED]

    def _ask(self, watch: Watch) -> bool:
        """Ask the provider; True when it said something final (applied like any receipt)."""
        if self._source is None or self._source.name != watch.provider:
            return False
        try:
            receipt = self._source.look_up(watch.message_id)
        except Exception as error:  # the protocol: None or an error both mean "cannot tell now"
            log.warning("comm %s recipient %d: %s could not be asked: %s", watch.comm_id.hex, watch.index,
                        watch.provider, describe(error))
            return False
        if receipt is None:
            return False
        try:
            self._book.apply(replace(receipt, comm_id=watch.comm_id, index=watch.index))
        except AzureError as error:
            log.warning("comm %s recipient %d: looked-up receipt not recorded: %s", watch.comm_id.hex, watch.index,
                        describe(error))
            return False
        return receipt.state is not None and RANK[receipt.state] >= RANK[ReceiptState.DELIVERED]
