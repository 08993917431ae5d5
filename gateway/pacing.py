"""Per-sender pacing: every instance hands out one sender's send times from one table row.

Providers limit each sender (Twilio: 1 segment/s for a US long code, 3 toll-free, 100 a short code;
ACS: 200 a minute per toll-free number), so with ``SMS_SENDER_RATE_PER_SECOND`` set a batch goes only
in a window its sender has free. The sender's row (``<prefix>SenderPacing``, PartitionKey a hash of the
sender, RowKey ``slot``) holds ``NextFreeAt``, the first moment nobody has reserved. ``admit`` reads it
and, when the window of ``count`` messages starting at ``max(now + LEAD_SECONDS, NextFreeAt)`` begins within
``TOLERANCE_SECONDS``, moves ``NextFreeAt`` on by ``count / rate`` with a write conditional on the ETag it
read (another instance's write in between makes it read and try again), writes the batch's claim, waits out
what is left to the window's start, and lets the batch go: the claim's round trip falls inside the lead, so
the calls go out when their window starts, not in the next one's. A window further off is not reserved: the
caller leaves its recipients Pending and the queue brings the message back when the window is due, so
nothing sleeps longer than the tolerance and no window is reserved ahead that nobody will use (one passes
unused only when its batch's claim outlasted the lead: the batch then takes the next). A fanned-out communication's
units are queued to become visible about when their windows come (``stagger``), not all at once. A
provider's 429 or ``Retry-After`` pushes the same row forward (``slow_down``). Cost per batch: one read and
one conditional write, one more of each per lost race; a message told to wait costs one read.
docs/delivery.md, "Pacing".
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from gateway.providers.base import Outcome, SendResult

log = logging.getLogger("gateway.pacing")

# A window that starts within this long is waited for in the function; a later one through the queue.
# At least one batch's window (``batch_size``), so one run paces itself without a trip through the queue.
TOLERANCE_SECONDS = 1.0
# A paced batch is this share of a second's messages: sent at its window's start, a batch can put at
# most ``rate * (1 + BURST_SHARE)`` provider calls in any one second.
BURST_SHARE = 0.1
# An idle sender's next window starts this far ahead, not at once: the batch's claim is written before the
# window starts (``admit``), and a window that started before its calls could go lets them land in the next one's.
LEAD_SECONDS = 0.25
# A batch whose claim ends this long after its window started does not go in it (its calls would crowd the next
# window's second) but takes the next free window; it waits at most LATE_WAIT_SECONDS for it, inside its claim.
LATE_SECONDS = 0.05
LATE_WAIT_SECONDS = 10.0
# Lost races before a batch gives up for now and waits a moment in the queue.
MAX_TRIES = 8
ROW_KEY = "slot"
MAX_STAGGER_SECONDS = 3600  # a unit further off waits an hour and then waits for its window as any other


class Pacer(Protocol):
    """How delivery asks whether a batch may go now; ``NoPacing`` says always, at no cost."""

    def batch_size(self, largest: int) -> int:
        """How many recipients a batch holds at most, given the provider's ``largest``."""
        ...

    def admit(self, sender: str, count: int, prepare: Callable[[], None]) -> float | None:
        """None: ``count`` messages' window is reserved, ``prepare`` has run and the window starts now: send.

        Else the seconds until a window may be free, and ``prepare`` has not run. ``prepare`` (delivery's claim)
        runs between the reservation and the window's start, so its storage round trip is not added to the
        moment the calls go out: a call that starts late lands in the next window's second.
        """
        ...

    def slow_down(self, sender: str, results: Sequence[SendResult]) -> None:
        """Push the sender's next free time past any Retry-After the provider answered with."""
        ...

    def stagger(self, sizes: Sequence[int]) -> list[int]:
        """Whole seconds each of a fanned-out communication's units (of ``sizes`` recipients) waits in the queue.

        Paced, a unit becomes visible about when its sender can take it, not all at once: a hundred units
        racing for ten windows would cost reads and re-queues, and their contention delays the calls that do go.
        """
        ...


class NoPacing:
    """``SMS_SENDER_RATE_PER_SECOND`` unset: batches go at once, and pacing makes no storage call."""

    def batch_size(self, largest: int) -> int:
        return largest

    def admit(self, sender: str, count: int, prepare: Callable[[], None]) -> float | None:
        prepare()
        return None

    def slow_down(self, sender: str, results: Sequence[SendResult]) -> None:
        return None

    def stagger(self, sizes: Sequence[int]) -> list[int]:
        return [0] * len(sizes)


def sender_key(sender: str) -> str:
    """The sender's PartitionKey: a hash, so no number is stored and no character is refused in a key."""
    return hashlib.sha256(sender.encode("utf-8")).hexdigest()[:32]


class TablePacer:
    """Send windows per sender from a row in ``table`` shared by every instance, at ``rate`` messages a second."""

    def __init__(
        self,
        table: TableClient,
        rate: float,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table
        self._rate = rate
        self._clock = clock
        self._sleep = sleep

    def batch_size(self, largest: int) -> int:
        return max(1, min(largest, math.floor(self._rate * BURST_SHARE)))

    def admit(self, sender: str, count: int, prepare: Callable[[], None]) -> float | None:
        start, reserved = self.reserve(sender, count)
        if not reserved:
            return max(start - self._clock(), 0.001)
        prepare()
        for _ in range(MAX_TRIES):
            if self._clock() - start <= LATE_SECONDS:
                break
            # The claim outlasted the lead and this window has passed: sent now, the calls would crowd the next
            # one's. The batch is claimed, so it takes the next free window, however far (a claim lasts a minute).
            log.info("pacing: sender %s's window passed while its batch was claimed; it takes the next",
                     sender_key(sender)[:8])
            start, reserved = self.reserve(sender, count, within=LATE_WAIT_SECONDS)
            if not reserved:  # booked further ahead than a claim can wait: the one case pacing gives way
                log.warning("pacing: sender %s is booked over %.0f s ahead; a claimed batch goes unpaced",
                            sender_key(sender)[:8], LATE_WAIT_SECONDS)
                return None
        wait = start - self._clock()
        if wait > 0:
            self._sleep(wait)
        return None

    def reserve(self, sender: str, count: int, *, within: float = TOLERANCE_SECONDS) -> tuple[float, bool]:
        """The start (epoch seconds) of the sender's next free window for ``count`` messages, and whether it is
        now reserved: only a window starting ``within`` seconds is; on a contended row, a moment on."""
        key = sender_key(sender)
        for _ in range(MAX_TRIES):
            row = self._read(key)
            now = self._clock()
            start = max(now + LEAD_SECONDS, float(row["NextFreeAt"]) if row else 0.0)
            if start - now > within:
                return start, False
            if self._write(key, row, start + count / self._rate):
                return start, True
        log.info("pacing: sender %s contended %d times; the batch waits a moment", key[:8], MAX_TRIES)
        return self._clock() + TOLERANCE_SECONDS, False

    def stagger(self, sizes: Sequence[int]) -> list[int]:
        """Each unit's wait: the messages before it at the sender's rate, rounded down, so a unit arrives at most a
        second (``TOLERANCE_SECONDS``) before its window and reserves it then."""
        before = [sum(sizes[:index]) for index in range(len(sizes))]
        return [min(math.floor(count / self._rate), MAX_STAGGER_SECONDS) for count in before]

    def slow_down(self, sender: str, results: Sequence[SendResult]) -> None:
        waits = [r.retry_after_seconds for r in results if r.outcome is Outcome.RETRY and r.retry_after_seconds]
        if not waits:
            return
        key = sender_key(sender)
        for _ in range(MAX_TRIES):
            row = self._read(key)
            until = self._clock() + max(waits)
            if row and float(row["NextFreeAt"]) >= until:
                return
            if self._write(key, row, until):
                log.info("pacing: sender %s slowed down for %.0f s at the provider's request", key[:8], max(waits))
                return

    def _read(self, key: str) -> Any:
        try:
            return self._table.get_entity(key, ROW_KEY)
        except ResourceNotFoundError:
            return None

    def _write(self, key: str, row: Any, next_free: float) -> bool:
        """Store ``next_free`` if the row is still as read (absent: if nobody created it); False on a lost race."""
        entity = {"PartitionKey": key, "RowKey": ROW_KEY, "NextFreeAt": next_free}
        try:
            if row is None:
                self._table.create_entity(entity)
            else:
                self._table.update_entity(entity, mode=UpdateMode.REPLACE, etag=row.metadata["etag"],
                                          match_condition=MatchConditions.IfNotModified)
        except ResourceExistsError:
            return False
        except HttpResponseError as error:
            if error.status_code == 412:
                return False
            raise
        return True
