"""Accepting sends: function_app's HTTP send function in-process, against the floor, on Azurite.

Ours: an ``azure.functions.HttpRequest`` handed to the user function of ``send_message`` (what
the Functions worker calls): authenticate (key cached), decode, validate, store the ``comm``
row in one entity-group transaction, enqueue the CommId. The floor: the same transaction and
the same base64 queue message written straight with the SDKs. Runs alternate in blocks.

    python -m bench.accept [--requests 200] [--recipients 1,100] [--rounds 10] [--warmup 20]
                           [--references-now]
"""

from __future__ import annotations

import argparse
import json
import sys

from bench.common import (
    Floor,
    InProcessApp,
    NumberPool,
    Timings,
    azurite,
    interleave,
    print_header,
    send_body,
    storage_env,
    table,
    write_results,
)

GOAL = 0.8
BODY = "Benchmark message: your appointment is confirmed for 10:30 on Tuesday."


def send_ours(app: InProcessApp, pool: NumberPool, count: int, references_now: bool, timings: Timings) -> None:
    body = json.dumps(send_body(pool.take(count), body=BODY, references_now=references_now)).encode()
    timings.time(lambda: app.send(body))


def send_floor(floor: Floor, pool: NumberPool, count: int, references_now: bool, timings: Timings) -> None:
    recipients = pool.take(count)
    timings.time(lambda: floor.accept(recipients, BODY, references_now=references_now))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.accept", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="measured sends per case, each of ours and floor")
    parser.add_argument("--recipients", default="1,100", help="comma-separated recipient counts (cases)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating blocks per case")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured sends of each first")
    parser.add_argument("--references-now", action="store_true",
                        help="CreateCommunicationReferencesImmediately=true (recipient rows at accept time)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_header("accept", args)
    cases = []
    with azurite() as server:
        env = storage_env(server.connection_string)
        app = InProcessApp(env)
        floor = Floor(server.connection_string, f"{env['SMS_TABLE_PREFIX']}Floor", f"{env['SMS_QUEUE_NAME']}-floor")
        try:
            pool = NumberPool()
            for count in (int(part) for part in args.recipients.split(",")):
                ours, base = Timings(), Timings()
                for _ in range(args.warmup):
                    send_ours(app, pool, count, args.references_now, Timings())
                    send_floor(floor, pool, count, args.references_now, Timings())
                interleave(args.rounds, max(1, args.requests // args.rounds),
                           lambda count=count, ours=ours: send_ours(app, pool, count, args.references_now, ours),
                           lambda count=count, base=base: send_floor(floor, pool, count, args.references_now, base))
                ratio = ours.throughput / base.throughput
                cases.append({"recipients": count, "ours": ours.summary(), "floor": base.summary(), "ratio": ratio,
                              "goal": GOAL, "met": ratio >= GOAL})
        finally:
            app.close()

    rows = []
    for case in cases:
        ours, base = case["ours"], case["floor"]
        rows.append([case["recipients"], ours["throughput_per_s"], base["throughput_per_s"], ours["p50_ms"],
                     base["p50_ms"], ours["p99_ms"], base["p99_ms"], case["ratio"],
                     ("PASS" if case["met"] else "FAIL") + f" (≥ {GOAL})"])
    print(table(["recipients", "ours/s", "floor/s", "ours p50 ms", "floor p50 ms", "ours p99 ms", "floor p99 ms",
                 "ours/floor", "goal"], rows))
    path = write_results("accept", args, {"cases": cases})
    print(f"results: {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
