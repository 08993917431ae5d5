"""The cost model of docs/cost.md: per 1,000 SMS, what the gateway spends in storage requests, function executions
and GB-seconds, and what that costs at the public prices below; and the rate at which each scale limit binds.

The storage requests are bench.transactions' counts (``bench/results/transactions.json``, written by
``python -m bench.transactions``), not estimates: accept and delivery as counted on the wire, host receive and
delete included. Receipts are the figures ``tests/integration/test_receipts.py`` asserts (Twilio's two status
callbacks per message). Execution times cannot be measured here (no Azure): they are stated assumptions, flags.

    python -m bench.transactions && python -m bench.cost [--memory-mb 2048] [--table-price 0.004]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import RESULTS, table

# Twilio posts a status callback per change: "sent" (a query and an insert), then "delivered" (a query, a
# transaction, and the licensee's webhook registration, read at most once a minute: counted every time here).
RECEIPT_CALLBACKS = 2
RECEIPT_REQUESTS = 2 + 3


@dataclass(frozen=True)
class Price:
    """A public price in USD with where it comes from; ``confirmed`` is False where no Microsoft page stated it."""

    value: float
    unit: str
    source: str
    confirmed: bool


PRICES = {
    "execution": Price(0.40 / 1_000_000, "per execution (Flex Consumption, on demand)",
                       "learn.microsoft.com/azure/azure-functions/functions-consumption-costs (Flex example)", True),
    "gb_second": Price(0.000026, "per GB-s (Flex Consumption, on demand)",
                       "learn.microsoft.com/azure/azure-functions/functions-consumption-costs (Flex example)", True),
    "queue": Price(0.004 / 10_000, "per queue operation (Standard LRS, class 1 and 2)",
                   "Azure Retail Prices API meters 'LRS Class 1/2 Operations' as quoted in public fixtures", False),
    "table": Price(0.004 / 10_000, "per table transaction (Standard LRS), assumed equal to the queue's",
                   "not found on a stored page: check prices.azure.com (serviceName 'Storage', productName 'Tables')",
                   False),
}

# Scalability targets (Microsoft Learn, "Scalability and performance targets" for Queue, Table and standard
# storage accounts). The account's default is 40,000 requests/s in East US and some other regions, 20,000 elsewhere.
QUEUE_MESSAGES_PER_SECOND = 2_000
PARTITION_ENTITIES_PER_SECOND = 2_000
ACCOUNT_REQUESTS_PER_SECOND = 20_000


@dataclass(frozen=True)
class Scenario:
    """1,000 SMS sent as sends of ``recipients`` each, with the counts bench.transactions measured for one send."""

    recipients: int
    accept: dict[str, int]
    deliver: dict[str, int]
    queue_messages: int

    @property
    def sends(self) -> float:
        return 1000 / self.recipients

    def requests(self, kind: str) -> float:
        """Storage requests of one kind (``table`` or ``queue``) per 1,000 SMS, receipts included (tables)."""
        per_send = sum(count for name, count in (*self.accept.items(), *self.deliver.items())
                       if name.startswith(kind + " "))
        receipts = RECEIPT_REQUESTS * 1000 if kind == "table" else 0
        return per_send * self.sends + receipts

    def executions(self) -> float:
        """HTTP sends, queue runs and status callbacks per 1,000 SMS."""
        return (1 + self.queue_messages) * self.sends + RECEIPT_CALLBACKS * 1000


@dataclass(frozen=True)
class Durations:
    """Assumed seconds of one execution in Azure (flags): nothing here can time a Functions host on Azure."""

    accept: float = 0.05
    per_recipient: float = 0.3  # one provider call, the bulk of a queue run
    receipt: float = 0.03
    minimum: float = 1.0  # Flex bills an activity period of at least 1,000 ms
    concurrency: int = 1  # executions sharing an instance at once: Flex bills the instance's time, not each one's

    def busy_seconds(self, scenario: Scenario) -> float:
        """Instance seconds per 1,000 SMS: execution seconds divided among the executions running at once."""
        alone = self.accept * scenario.sends + self.per_recipient * 1000 + self.receipt * RECEIPT_CALLBACKS * 1000
        return alone / self.concurrency


def scenarios(document: dict[str, Any]) -> list[Scenario]:
    """The sends bench.transactions measured with references made by the worker (the default)."""
    found = [Scenario(case["recipients"], case["accept"]["by_operation"], case["deliver"]["by_operation"],
                      case["deliver"]["messages"])
             for case in document["cases"] if not case["references_now"]]
    if not found:
        raise ValueError("bench/results/transactions.json holds no case with references_now false")
    return found


def priced(scenario: Scenario, durations: Durations, memory_gb: float, table_price: float) -> dict[str, float]:
    """Every figure of one row of docs/cost.md's table, per 1,000 SMS."""
    tables, queues, executions = scenario.requests("table"), scenario.requests("queue"), scenario.executions()
    gb_seconds = memory_gb * durations.busy_seconds(scenario)
    gb_seconds_ceiling = memory_gb * max(durations.minimum, durations.per_recipient) * executions
    storage = tables * table_price + queues * PRICES["queue"].value
    compute = executions * PRICES["execution"].value + gb_seconds * PRICES["gb_second"].value
    return {"table": tables, "queue": queues, "executions": executions, "gb_seconds": gb_seconds,
            "gb_seconds_ceiling": gb_seconds_ceiling, "storage_usd": storage, "compute_usd": compute,
            "total_usd": storage + compute,
            "ceiling_usd": storage + executions * PRICES["execution"].value
            + gb_seconds_ceiling * PRICES["gb_second"].value}


def limits(scenario: Scenario) -> dict[str, float]:
    """SMS per second at which each scale target binds, for sends of this size."""
    per_sms = (scenario.requests("table") + scenario.requests("queue")) / 1000
    queue_ops_per_sms = scenario.requests("queue") / 1000
    return {"account": ACCOUNT_REQUESTS_PER_SECOND / per_sms,
            "queue": QUEUE_MESSAGES_PER_SECOND / queue_ops_per_sms,
            "day_partition": PARTITION_ENTITIES_PER_SECOND * scenario.recipients}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS / "transactions.json")
    parser.add_argument("--memory-mb", type=int, default=2048, help="Flex instance memory (512, 2048 or 4096)")
    parser.add_argument("--table-price", type=float, default=PRICES["table"].value * 10_000,
                        help="USD per 10,000 table transactions")
    parser.add_argument("--concurrency", type=int, default=1, help="executions running at once on an instance")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        document = json.loads(args.results.read_text())
    except FileNotFoundError:
        print(f"{args.results} is missing: run `python -m bench.transactions` first", file=sys.stderr)
        return 2
    durations, memory_gb = Durations(concurrency=args.concurrency), args.memory_mb / 1024
    rows, limit_rows = [], []
    for scenario in scenarios(document):
        figures = priced(scenario, durations, memory_gb, args.table_price / 10_000)
        rows.append([scenario.recipients, f"{scenario.sends:g}", round(figures["table"]), round(figures["queue"]),
                     round(figures["executions"]), round(figures["gb_seconds"]), round(figures["gb_seconds_ceiling"]),
                     f"{figures['storage_usd']:.4f}", f"{figures['compute_usd']:.4f}", f"{figures['total_usd']:.4f}",
                     f"{figures['ceiling_usd']:.4f}"])
        bound = limits(scenario)
        limit_rows.append([scenario.recipients, round(bound["account"]), round(bound["queue"]),
                           round(bound["day_partition"])])
    print(f"# bench.cost: {args.results.name} of {document['machine']['when']}, {args.memory_mb} MB instances, "
          f"{args.concurrency} at once")
    print(table(["recipients per send", "sends", "table requests", "queue requests", "executions", "GB-s",
                 "GB-s ceiling", "storage $", "compute $", "total $", "ceiling $"], rows))
    print()
    print(table(["recipients per send", "SMS/s at the account's 20,000 requests/s",
                 "SMS/s at a queue's 2,000 messages/s", "SMS/s at the day partition's 2,000 entities/s"],
                limit_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
