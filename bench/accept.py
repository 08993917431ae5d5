"""Accepting sends: function_app's HTTP send function in-process, against the floor, on Azurite.

Ours: an ``azure.functions.HttpRequest`` handed to the user function of ``sendmessage`` (what
the Functions worker calls): authenticate (key cached), decode, validate, store the ``comm``
row, enqueue the CommId. The floor: the least a durable accept needs, written straight with the
SDKs: the same ``comm`` entity in one plain insert (an entity-group transaction only when
recipient rows go with it) and the same base64 queue message. A third series, for diagnosis, is
the floor plus the one check the API promises and the floor skips: every number parsed and
validated with phonenumbers and written in E.164. Every request uses numbers not used before in
the run. Runs alternate in blocks.

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


def send_floor(floor: Floor, pool: NumberPool, count: int, references_now: bool, timings: Timings,
               validate: bool = False) -> None:
    recipients = pool.take(count)
    timings.time(lambda: floor.accept(recipients, BODY, references_now=references_now, validate=validate))


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
            now = args.references_now
            for count in (int(part) for part in args.recipients.split(",")):
                ours, base, checked = Timings(), Timings(), Timings()
                for _ in range(args.warmup):
                    send_ours(app, pool, count, now, Timings())
                    send_floor(floor, pool, count, now, Timings())
                    send_floor(floor, pool, count, now, Timings(), validate=True)
                interleave(args.rounds, max(1, args.requests // args.rounds),
                           lambda count=count, ours=ours: send_ours(app, pool, count, now, ours),
                           lambda count=count, base=base: send_floor(floor, pool, count, now, base),
                           lambda count=count, checked=checked: send_floor(floor, pool, count, now, checked,
                                                                           validate=True))
                ratio = ours.throughput / base.throughput
                cases.append({"recipients": count, "ours": ours.summary(), "floor": base.summary(),
                              "floor_with_validation": checked.summary(), "ratio": ratio,
                              "ratio_to_floor_with_validation": ours.throughput / checked.throughput,
                              "goal": GOAL, "met": ratio >= GOAL})
        finally:
            app.close()

    rows, diagnosis = [], []
    for case in cases:
        ours, base, checked = case["ours"], case["floor"], case["floor_with_validation"]
        rows.append([case["recipients"], ours["throughput_per_s"], base["throughput_per_s"], ours["p50_ms"],
                     base["p50_ms"], ours["p99_ms"], base["p99_ms"], case["ratio"],
                     ("PASS" if case["met"] else "FAIL") + f" (≥ {GOAL})"])
        diagnosis.append([case["recipients"], checked["throughput_per_s"], checked["p50_ms"],
                          checked["p50_ms"] - base["p50_ms"], ours["p50_ms"] - checked["p50_ms"],
                          case["ratio_to_floor_with_validation"]])
    print(table(["recipients", "ours/s", "floor/s", "ours p50 ms", "floor p50 ms", "ours p99 ms", "floor p99 ms",
                 "ours/floor", "goal"], rows))
    print()
    print(table(["recipients", "floor + number validation /s", "its p50 ms", "validation ms (p50)",
                 "rest of ours ms (p50)", "ours / (floor + validation)"], diagnosis))
    path = write_results("accept", args, {"cases": cases})
    print(f"results: {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
