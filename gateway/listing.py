"""Every index row a communication needs before its header exists, written at the same time.

Three indexes find a communication later without scanning for it, so each must list it before its ``comm`` row is
written: a header without its row would be lost to that reader. The open-work index (the sweep finds work a lost
queue message left: ``gateway/open_work.py``), the message log (``GET /api/sms`` and retention:
``gateway/message_log.py``) and, for a scheduled send, the schedule index (``gateway/schedule.py``). No row depends
on another, so they go at once: an accept waits one round trip for all of them, not one per index
(``docs/performance.md``). A row left without its header (the accept failed after it, or its candidate reference was
taken) is skipped by every reader and dropped by the sweep or by retention.

``CommunicationStore.create`` calls ``Listing.write`` for every accept path (a send, an Idempotency-Key accept, a
resend); a failure of any row raises before the header is written, so the caller truthfully answers that nothing
was accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from gateway.message_log import LogEntry, MessageLog
from gateway.open_work import OpenWork
from gateway.schedule import ScheduledSend, ScheduleIndex
from gateway.storage import Communication

INDEXES = 3  # the writes one accept makes at most at once (its rows by recipient go on the message log's own pool)


class Listing:
    """The indexes a communication is listed in before its header: any of them may be absent (tests, tools)."""

    def __init__(self, open_work: OpenWork | None = None, message_log: MessageLog | None = None,
                 schedule: ScheduleIndex | None = None) -> None:
        self.open_work = open_work
        self.message_log = message_log
        self.schedule = schedule
        self._pool = ThreadPoolExecutor(max_workers=INDEXES - 1, thread_name_prefix="listing")

    def write(self, comm: Communication) -> None:
        """List ``comm`` in every index it belongs in, all at once; returns when every write has answered, and
        raises the first failure only then (a row still in flight when the caller answers could land after it)."""
        writes = self._writes(comm)
        if not writes:
            return
        pending = [self._pool.submit(write) for write in writes[1:]]
        try:
            writes[0]()
        finally:
            for future in pending:
                future.exception()
        for future in pending:
            future.result()

    def _writes(self, comm: Communication) -> list[Callable[[], None]]:
        writes: list[Callable[[], None]] = []
        log, open_work, schedule = self.message_log, self.open_work, self.schedule
        if log is not None:  # every communication: the log lists final ones too
            entry = LogEntry(comm.licensee_id, comm.comm_id, comm.created_at,
                             tuple(spec.phone_number for spec in comm.recipients_spec))
            writes.append(lambda: log.add(entry))
        if open_work is not None:  # never work without its row (one final already has none to list)
            writes.append(lambda: open_work.list_communication(comm))
        if schedule is not None and comm.send_at is not None:
            due = ScheduledSend(comm.comm_id, comm.send_at)
            writes.append(lambda: schedule.add(due))
        return writes
