"""Storage transactions per message, counted exactly: every request the storage SDKs send.

A ``CountingPolicy`` (an azure-core ``SansIOHTTPPolicy``) is handed to the gateway's storage
clients (``StorageClients.create(policies=...)``) and runs on every request, each try included.
Accept is one call of the HTTP send function with the API key already cached. Delivery is what
the Functions host and our queue function do together for that message: the host's receive
(one GET for the one message waiting; the real host fetches up to 16 per GET, so this is the
worst case) and, after our function returns, its delete; both are made here by a host
simulation whose queue client counts with the same policy. The provider is the Twilio fake,
so the provider's calls are HTTP to it, not storage (counted separately). The floor: the same
job written straight against the SDKs (bench.common.Floor), counted the same way.

Since issue 17 the floor lists its send before storing it, as a correct accept must (``Floor._list``: an open-work
row, a log row, the rows by number) and deletes its open-work row once delivered.

A communication larger than one provider batch is fanned out (docs/delivery.md): the host runs the
message accept wrote, then one message per unit it queued, each received and deleted; all are counted.

Goals: accept ≤ 6 and deliver ≤ 8 for one recipient (before issue 17: 2 and 7; the message log's two rows, its
rows by recipient (one transaction per 100 numbers, for GET /api/sms?PhoneNumber=) and the open-work row's write
and delete, docs/log.md and docs/delivery.md), and each further 100 recipients (or part of 100) adds at most 2 to
each (accept: the recipient rows' transaction when written at accept, and the rows by recipient's):
budget(n) = base + 2 * ceil((n - 1) / 100); a fanned-out delivery
at most 5 + 10 per unit (the price of delivering units in parallel, docs/performance.md). Delivery through
a provider whose receipts may name only its message id (Twilio without a callback URL of ours) also writes
the message-id index, one row per recipient sent (docs/delivery.md, "Receipts"): + n; and through a provider
the missing-receipt check can ask (Twilio), one transaction per batch of watch rows: + 1 per batch; and from a
sender that can be answered (a number), one transaction per batch of reply-index rows (docs/replies.md): + 1 per
batch.

    python -m bench.transactions [--recipients 1,100,1000]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import uuid
from collections import Counter
from typing import Any

from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from bench.common import (
    CountingPolicy,
    Floor,
    InProcessApp,
    NumberPool,
    azurite,
    print_header,
    send_body,
    storage_env,
    table,
    twilio_fake_process,
    write_results,
)
from gateway.connections import observer_options
from gateway.storage import CommStatus

# Accept: the open-work row (issue 17: the sweep reads only open work), the comm row, the queue put; the message log's
# two rows and its rows by recipient (a transaction per 100 numbers), written at the same time, before the comm row.
# Deliver: read, the opt-out look-up, claim, record, the read that settles a final communication with its receipts,
# the open-work row's delete once it is final, host receive and delete.
ACCEPT_BASE, DELIVER_BASE, PER_100 = 6, 8, 2
INDEX_PER_RECIPIENT = 1  # the message-id index: one write per recipient the provider accepted
WATCH_PER_BATCH = 1  # the missing-receipt check's watch rows: one transaction per batch the provider accepted
REPLIES_PER_BATCH = 1  # the reply index's rows: one transaction per batch sent from a number
# A fanned-out communication: its first message (receive, read, a send per unit, delete) and the open-work row's
# delete by the settle that makes it final, plus per unit at most receive, read, the opt-out look-up, claim, record,
# the settle's narrow read (two pages past 1,000 rows) and conditional write, delete.
FAN_OUT_BASE, PER_UNIT = 5, 10
BODY = "Benchmark message: your appointment is confirmed for 10:30 on Tuesday."


def budget(base: int, recipients: int) -> int:
    return base + PER_100 * math.ceil((recipients - 1) / 100)


def fan_out_budget(units: int) -> int:
    return FAN_OUT_BASE + PER_UNIT * units


class Host:
    """The Functions host's part of one delivery: receive the message, run the function, delete it."""

    def __init__(self, connection: str, queue_name: str, counter: CountingPolicy) -> None:
        self.client = QueueClient.from_connection_string(connection, queue_name,
                                                         message_decode_policy=TextBase64DecodePolicy(),
                                                         **observer_options([counter]))

    def run_one(self, function: Any) -> str:
        page = next(self.client.receive_messages(messages_per_page=1, visibility_timeout=600).by_page())
        message = next(iter(page))
        function(message)
        self.client.delete_message(message)
        return str(message.content)

    def run_all(self, function: Any, expected: int) -> int:
        """Run ``expected`` messages one at a time, those the runs queue included (a fan-out's units)."""
        for _ in range(expected):
            self.run_one(function)
        return expected


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.transactions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", default="1,100,1000", help="comma-separated recipient counts")
    return parser.parse_args(argv)


def measure(app: InProcessApp, host: Host, counter: CountingPolicy, floor: Floor, floor_host: Host,
            floor_counter: CountingPolicy, recipients: list[str], references_now: bool) -> dict[str, Any]:
    body = json.dumps(send_body(recipients, body=BODY, references_now=references_now)).encode()
    counter.take()
    comm_id = uuid.UUID(app.send(body)["CommId"])
    accept = counter.take()
    units = len(app.gateway.delivery.units(len(recipients)))
    messages = 1 + units if units > 1 else 1  # the message accept wrote, then one per unit it fans out into
    host.run_all(lambda message: app.deliver(str(message.content).encode(), message_id=message.id,
                                             dequeue_count=message.dequeue_count), messages)
    deliver = counter.take()
    snapshot = app.gateway.store.load(comm_id)
    if snapshot is None or snapshot.communication.status is not CommStatus.SENT:
        raise RuntimeError(f"comm {comm_id.hex} was not delivered")

    floor_counter.take()
    floor_id = floor.accept(recipients, BODY, references_now=references_now)
    floor_accept = floor_counter.take()
    floor_host.run_one(lambda message: floor.deliver(json.loads(message.content)["CommId"]))
    floor_deliver = floor_counter.take()
    assert floor_id
    return {"accept": accept, "deliver": deliver, "floor_accept": floor_accept, "floor_deliver": floor_deliver,
            "messages": messages}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_header("transactions", args)
    counts = [int(part) for part in args.recipients.split(",")]
    rows_out: list[dict[str, Any]] = []
    with azurite() as server, twilio_fake_process() as twilio:
        for references_now in (False, True):
            counter, floor_counter = CountingPolicy(), CountingPolicy()
            env = storage_env(server.connection_string, **twilio.env())
            app = InProcessApp(env, policies=[counter])
            host = Host(server.connection_string, env["SMS_QUEUE_NAME"], counter)
            floor_queue = f"{env['SMS_QUEUE_NAME']}-floor"
            floor = Floor(server.connection_string, f"{env['SMS_TABLE_PREFIX']}Floor", floor_queue,
                          policies=[floor_counter], twilio=twilio)
            floor_host = Host(server.connection_string, floor_queue, floor_counter)
            pool = NumberPool()
            try:
                measure(app, host, counter, floor, floor_host, floor_counter, pool.take(1), references_now)  # warm
                for count in counts:
                    result = measure(app, host, counter, floor, floor_host, floor_counter, pool.take(count),
                                     references_now)
                    rows_out.append({"references_now": references_now, "recipients": count, **result})
            finally:
                app.close()

    rows, breakdown, cases = [], [], []
    all_met = True
    for row in rows_out:
        count = row["recipients"]
        accept, deliver = sum(row["accept"].values()), sum(row["deliver"].values())
        floor_accept, floor_deliver = sum(row["floor_accept"].values()), sum(row["floor_deliver"].values())
        units = row["messages"] - 1
        accept_budget = budget(ACCEPT_BASE, count)
        deliver_budget = ((fan_out_budget(units) if units else budget(DELIVER_BASE, count))
                          + INDEX_PER_RECIPIENT * count + (WATCH_PER_BATCH + REPLIES_PER_BATCH) * max(units, 1))
        accept_met, deliver_met = accept <= accept_budget, deliver <= deliver_budget
        all_met = all_met and accept_met and deliver_met
        flag = "true" if row["references_now"] else "false"
        rows.append([flag, count, accept, floor_accept, f"≤ {accept_budget}", "PASS" if accept_met else "FAIL",
                     row["messages"], deliver, deliver / count, floor_deliver, f"≤ {deliver_budget}",
                     "PASS" if deliver_met else "FAIL"])
        breakdown.append([flag, count, _spell(row["accept"]), _spell(row["deliver"])])
        cases.append({"references_now": row["references_now"], "recipients": count,
                      "accept": {"total": accept, "floor": floor_accept, "budget": accept_budget, "met": accept_met,
                                 "by_operation": dict(row["accept"])},
                      "deliver": {"total": deliver, "floor": floor_deliver, "budget": deliver_budget,
                                  "met": deliver_met, "by_operation": dict(row["deliver"]),
                                  "messages": row["messages"], "per_recipient": deliver / count}})
    print(table(["CreateCommunicationReferencesImmediately", "recipients", "accept", "floor", "goal", "",
                 "queue messages", "deliver (host receive+delete incl.)", "per recipient", "floor", "goal", ""], rows))
    print()
    print(table(["references now", "recipients", "accept: requests", "deliver: requests"], breakdown))
    rule = (f"base + {PER_100} * ceil((n - 1) / 100); accept base {ACCEPT_BASE}, deliver base {DELIVER_BASE} (host "
            f"receive and delete included); a fanned-out delivery {FAN_OUT_BASE} + {PER_UNIT} per unit; deliver + n "
            "index writes + 2 per batch (watch rows, reply index)")
    path = write_results("transactions", args, {"budget": rule,
                                                "cases": cases, "all_met": all_met})
    print(f"results: {path.relative_to(path.parents[2])}")
    return 0


def _spell(counts: Counter[str]) -> str:
    return ", ".join(f"{name} {value}" for name, value in sorted(counts.items()))


if __name__ == "__main__":
    sys.exit(main())
