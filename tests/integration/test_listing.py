"""An accept lists a communication in every index before its header (``gateway/listing.py``): all at once, so it
waits one round trip for them, and a failed row stores no header only once every other row has answered."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import timedelta

import pytest
from azure.core.exceptions import ServiceRequestError

from gateway.runtime import Gateway
from gateway.storage import CommStatus, utcnow
from tests.integration.test_storage import make_comm

SLOW = 0.4  # seconds each index write is held: far above Azurite's own round trip


class Timeline:
    """When each wrapped write started and ended, and when the header was written."""

    def __init__(self) -> None:
        self.spans: dict[str, tuple[float, float]] = {}
        self.header_at: float | None = None
        self._lock = threading.Lock()

    def slowed(self, name: str, write, *, fail: Exception | None = None):
        def wrapped(*args, **kwargs):
            started = time.monotonic()
            try:
                if fail is not None:
                    raise fail
                time.sleep(SLOW)
                return write(*args, **kwargs)
            finally:
                with self._lock:
                    self.spans[name] = (started, time.monotonic())
        return wrapped


def scheduled_comm():
    comm = make_comm(3, reference=f"L{time.monotonic_ns() % 10**9:09d}")
    return dataclasses.replace(comm, status=CommStatus.SCHEDULED, send_at=utcnow() + timedelta(hours=1))


def watched(gateway: Gateway, *, failing: str | None = None) -> Timeline:
    """Slow every index write of the request store's listing (and fail ``failing`` at once); time the header."""
    timeline, listing, table = Timeline(), gateway.service._store.listing, gateway.service._store._table
    error = ServiceRequestError("connection refused")
    listing.open_work.open = timeline.slowed("open work", listing.open_work.open,
                                             fail=error if failing == "open work" else None)
    listing.message_log.add = timeline.slowed("message log", listing.message_log.add,
                                              fail=error if failing == "message log" else None)
    listing.schedule.add = timeline.slowed("schedule", listing.schedule.add,
                                           fail=error if failing == "schedule" else None)
    original = table.create_entity

    def header(*args, **kwargs):
        timeline.header_at = time.monotonic()
        return original(*args, **kwargs)
    table.create_entity = header
    return timeline


def test_every_index_row_is_written_at_once_and_before_the_header(make_gateway) -> None:
    gateway = make_gateway()
    timeline = watched(gateway)
    comm = scheduled_comm()
    started = time.monotonic()
    gateway.service._store.create(comm)
    elapsed = time.monotonic() - started
    assert set(timeline.spans) == {"open work", "message log", "schedule"}
    assert timeline.header_at is not None and timeline.header_at >= max(end for _, end in timeline.spans.values())
    assert max(start for start, _ in timeline.spans.values()) < min(end for _, end in timeline.spans.values())
    assert elapsed < 2 * SLOW, f"the three rows took {elapsed:.2f} s: written one after another"
    assert gateway.store.load_header(comm.comm_id).status is CommStatus.SCHEDULED


@pytest.mark.parametrize("failing", ["open work", "message log", "schedule"])
def test_a_failed_index_row_stores_no_header_once_the_others_answered(make_gateway, failing: str) -> None:
    gateway = make_gateway()
    timeline = watched(gateway, failing=failing)
    comm = scheduled_comm()
    with pytest.raises(ServiceRequestError):
        gateway.service._store.create(comm)
    raised_at = time.monotonic()
    assert timeline.header_at is None and gateway.store.load_header(comm.comm_id) is None
    others = [end for name, (_, end) in timeline.spans.items() if name != failing]
    assert len(others) == 2 and max(others) <= raised_at  # no row still in flight behind the answer


def test_a_communication_final_at_accept_is_logged_but_not_open_work(make_gateway) -> None:
    gateway = make_gateway()
    timeline = watched(gateway)
    comm = dataclasses.replace(make_comm(1, reference="LFINAL0001"), status=CommStatus.FAILED)
    gateway.service._store.create(comm)
    assert "open work" not in timeline.spans  # listed nowhere the sweep looks: nothing left to do
    assert "message log" in timeline.spans  # but the log lists it
