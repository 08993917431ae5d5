"""Delivering queued communications: function_app's queue function in-process, against the floor.

Ours: an ``azure.functions.queue.QueueMessage`` carrying ``{"CommId": ...}`` handed to the user
function of ``deliver`` (what the worker calls after the host took the message off the queue):
read the partition, then per batch of 99 claim the rows, call the provider once per recipient,
record the outcomes. The floor does the same read, the same two transactions per batch and the
same provider calls straight with the SDKs and ``requests``. Both talk to the same provider: the
Twilio fake from fakes/ (the real wire, one HTTPS-less POST per recipient, as Twilio has no
batch send), run in a process of its own so its request checking does not share our interpreter.
The host's queue receive and delete are the same for both and are left out here
(bench.transactions counts them). Communications are accepted beforehand, untimed.

    python -m bench.deliver [--cases 1x100,100x6] [--warmup 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

from bench.common import (
    Floor,
    InProcessApp,
    NumberPool,
    Timings,
    azurite,
    print_header,
    send_body,
    storage_env,
    table,
    twilio_fake_process,
    write_results,
)
from gateway.queue import encode_message
from gateway.storage import CommStatus

GOAL = 0.8
BODY = "Benchmark message: your appointment is confirmed for 10:30 on Tuesday."


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.deliver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="1x100,100x6",
                        help="RECIPIENTSxCOMMUNICATIONS, comma-separated (each of ours and floor delivers that many)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured communications of each first, per case")
    return parser.parse_args(argv)


def accept(app: InProcessApp, pool: NumberPool, count: int, how_many: int) -> list[uuid.UUID]:
    ids = []
    for _ in range(how_many):
        answer = app.send(json.dumps(send_body(pool.take(count), body=BODY)).encode())
        ids.append(uuid.UUID(answer["CommId"]))
    return ids


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_header("deliver", args)
    cases = []
    with azurite() as server, twilio_fake_process() as twilio:
        env = storage_env(server.connection_string, **twilio.env())
        app = InProcessApp(env)
        floor = Floor(server.connection_string, app.gateway.settings.communications_table,
                      f"{env['SMS_QUEUE_NAME']}-floor", twilio=twilio)
        pool = NumberPool()
        try:
            for case in args.cases.split(","):
                count, how_many = (int(part) for part in case.lower().split("x"))
                total = how_many + args.warmup
                ours_ids, floor_ids = accept(app, pool, count, total), accept(app, pool, count, total)
                ours, base = Timings(), Timings()
                for index, (mine, theirs) in enumerate(zip(ours_ids, floor_ids, strict=True)):
                    measured = index >= args.warmup
                    message = encode_message(mine).encode()
                    first, second = (ours, base) if index % 2 == 0 else (base, ours)
                    for timings in (first, second):
                        target = timings if measured else Timings()
                        if timings is ours:
                            target.time(lambda message=message: app.deliver(message), units=count)
                        else:
                            target.time(lambda theirs=theirs: floor.deliver(theirs.hex), units=count)
                for comm_id in ours_ids:  # every one of ours really went out
                    report = app.gateway.store.load(comm_id)
                    if report is None or report.communication.status is not CommStatus.SENT:
                        raise RuntimeError(f"comm {comm_id.hex} was not delivered")
                ratio = ours.throughput / base.throughput
                cases.append({"recipients": count, "communications": how_many, "ours": ours.summary(),
                              "floor": base.summary(), "ratio": ratio, "goal": GOAL, "met": ratio >= GOAL})
        finally:
            app.close()

    rows = []
    for case in cases:
        ours, base = case["ours"], case["floor"]
        rows.append([case["recipients"], case["communications"], ours["throughput_per_s"], base["throughput_per_s"],
                     ours["p50_ms"], base["p50_ms"], ours["p99_ms"], base["p99_ms"], case["ratio"],
                     ("PASS" if case["met"] else "FAIL") + f" (≥ {GOAL})"])
    print(table(["recipients/comm", "comms", "ours recipients/s", "floor recipients/s", "ours p50 ms/comm",
                 "floor p50 ms/comm", "ours p99 ms", "floor p99 ms", "ours/floor", "goal"], rows))
    path = write_results("deliver", args, {"provider": "twilio fake (fakes/twilio.py, own process)",
                                           "cases": cases})
    print(f"results: {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
