"""The health check's probe: storage answers within a deadline, or the gateway is not healthy.

A probe that waits as long as a request may (``connections.REQUEST_BUDGET``) would keep a load
balancer waiting for seconds while storage stalls; this one gives both services one short deadline
together and tries each once, so ``/api/health`` answers 503 within ``HEALTH_SECONDS``.
"""

from __future__ import annotations

import time

from gateway.connections import TableStore
from gateway.queue import DeliveryQueue

HEALTH_SECONDS = 1.5
MIN_PROBE_SECONDS = 0.1


class StorageProbe:
    def __init__(self, table: TableStore, queue: DeliveryQueue, *, seconds: float = HEALTH_SECONDS) -> None:
        self._table = table
        self._queue = queue
        self._seconds = seconds

    def check(self) -> None:
        """Raise (an ``AzureError``) unless the table and the queue both answer within the deadline."""
        deadline = time.monotonic() + self._seconds
        self._table.ping(self._seconds)
        self._queue.ping(max(MIN_PROBE_SECONDS, deadline - time.monotonic()))
