"""What one sweep costs as the communications table grows: storage requests, counted exactly, and time.

Two tables are set up side by side on one Azurite, each with ``--open`` open communications (accepted, never
queued: the sweep finds each one lost and queues it) and a number of final ones: the baseline with as many final
ones as open ones, the other with ``--final`` (10,000 by default). Final communications are written straight into
the table as a delivered communication leaves them (a ``comm`` row, Sent, no open-work row), many at once, since
only their presence matters. Then one sweep runs (``worker.run_sweep``, a quiet time later) with a ``CountingPolicy``
on every storage client, and the ratio of the two sweeps' requests is printed: the goal is 1.0 at most, the sweep
reading only open work (``gateway/open_work.py``).

For reference, the scan the sweep ran before issue 17 (every ``comm`` row Queued or Sending, a filtered query
across partitions) is timed on both tables. Azurite answers a filtered query in one page however many rows it
reads, so its request count does not grow there; on Azure Table Storage a query returns at most 1,000 rows read
per page (and stops at 5 s), so that scan's requests grew with the table: 10,000 rows, at least 10 requests.

    python -m bench.sweep [--final 10000] [--open 10]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from azure.data.tables import TableServiceClient

from bench.common import (
    LICENSEE,
    SENDER,
    CountingPolicy,
    azurite,
    numbers,
    print_header,
    storage_env,
    table,
    write_results,
)
from gateway import worker
from gateway.connections import StorageClients
from gateway.runtime import Gateway, use_gateway
from gateway.settings import Settings
from gateway.storage import CommStatus, Communication, RecipientSpec, communication_entity, utcnow

WRITERS = 16  # final rows written at once


@dataclass(frozen=True)
class SweepCost:
    final: int
    open: int
    requests: Counter[str]
    queued: int
    seconds: float
    scan_seconds: float  # the scan the sweep ran before issue 17, on the same table

    @property
    def total(self) -> int:
        return sum(self.requests.values())


def communication(index: int, status: CommStatus) -> Communication:
    """A one-recipient communication as accepted (``Queued``) or as delivery leaves it (``Sent``)."""
    return Communication(comm_id=uuid.uuid4(), licensee_id=LICENSEE, reference=f"SWEEP{index:07d}", sender=SENDER,
                         body="Sweep benchmark", recipients_spec=[RecipientSpec(numbers(1, index)[0])],
                         status=status, sent_count=int(status is CommStatus.SENT))


def write_final(service: TableServiceClient, table_name: str, count: int) -> None:
    """``count`` final communications' ``comm`` rows, written directly (no open-work row: their delivery ended)."""
    client = service.get_table_client(table_name)
    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(lambda index: client.create_entity(communication_entity(communication(index, CommStatus.SENT))),
                      range(count)))


def sweep_cost(connection: str, final: int, open_count: int) -> SweepCost:
    """Set up ``final`` final and ``open_count`` lost communications in tables of their own, and sweep once."""
    counter = CountingPolicy()
    settings = Settings.from_env(storage_env(connection))
    gateway = Gateway.start(settings, clients=StorageClients.create(settings.storage, policies=[counter]))
    raw = TableServiceClient.from_connection_string(connection)
    write_final(raw, settings.communications_table, final)
    for index in range(open_count):  # accepted (listed in the open-work index), never queued: lost
        gateway.store.create(communication(final + index, CommStatus.QUEUED))
    later = utcnow() + timedelta(seconds=settings.sweep_after_seconds + 1)
    use_gateway(gateway)
    try:
        counter.take()
        started = time.perf_counter()
        report = worker.run_sweep(now=later)
        seconds = time.perf_counter() - started
        requests = counter.take()
    finally:
        use_gateway(None)
        gateway.clients.session.close()
    return SweepCost(final, open_count, requests, report.queued, seconds,
                     old_scan_seconds(raw, settings.communications_table, later))


def old_scan_seconds(service: TableServiceClient, table_name: str, now: Any) -> float:
    """Time the filtered scan the sweep ran before issue 17 (``CommunicationStore.stale``), every page of it."""
    query = ("RowKey eq 'comm' and ( Status eq 'Queued' or Status eq 'Sending' ) and UpdatedAt lt @before "
             "and ( CreatedAt gt @after or SendAt gt @after )")
    started = time.perf_counter()
    list(service.get_table_client(table_name).query_entities(
        query, parameters={"before": now, "after": now - timedelta(days=2)}))
    return time.perf_counter() - started


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--final", type=int, default=10_000, help="final communications in the larger table")
    parser.add_argument("--open", type=int, default=10, help="open (lost) communications in each table")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_header("sweep", args)
    with azurite() as server:
        baseline = sweep_cost(server.connection_string, args.open, args.open)
        large = sweep_cost(server.connection_string, args.final, args.open)
    rows = [[each.final, each.open, each.queued, each.total, _spell(each.requests), f"{each.seconds * 1000:.0f}",
             f"{each.scan_seconds * 1000:.0f}"] for each in (baseline, large)]
    print(table(["final", "open", "queued", "sweep: requests", "by operation", "sweep ms", "old scan ms"], rows))
    ratio = large.total / baseline.total
    met = large.total <= baseline.total and large.queued == baseline.queued == args.open
    print()
    print(f"requests, {args.final} final / {args.open} final: {ratio:.2f} (goal ≤ 1.00: {'PASS' if met else 'FAIL'}); "
          f"time {large.seconds / baseline.seconds:.2f}; the old scan's time "
          f"{large.scan_seconds / max(baseline.scan_seconds, 1e-6):.2f}")
    path = write_results("sweep", args, {
        "cases": [{"final": each.final, "open": each.open, "queued": each.queued, "requests": each.total,
                   "by_operation": dict(each.requests), "seconds": each.seconds, "old_scan_seconds": each.scan_seconds}
                  for each in (baseline, large)],
        "ratio": ratio, "met": met})
    print(f"results: {path.relative_to(path.parents[2])}")
    return 0 if met else 1


def _spell(counts: Counter[str]) -> str:
    return ", ".join(f"{name} {value}" for name, value in sorted(counts.items()))


if __name__ == "__main__":
    sys.exit(main())
