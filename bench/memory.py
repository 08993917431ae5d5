"""Memory: peak RSS while accepting and while delivering one 1,000-recipient message.

A fresh child process imports ``function_app``, builds the Gateway and runs one small send and
delivery (so pools and caches exist): its RSS then is the **baseline**. Then, for accept (the HTTP
send function, CreateCommunicationReferencesImmediately both ways) and for delivery (the queue
function, through the Twilio fake in another process), the kernel's peak-RSS mark is reset
(``/proc/self/clear_refs``) and read after the call (``VmHWM``); a second identical message is run
under ``tracemalloc`` for the peak of Python allocations alone (tracemalloc's own bookkeeping
would inflate RSS, so the two are measured apart). ``resource.getrusage`` gives the whole run's peak.

    python -m bench.memory [--recipients 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tracemalloc
import uuid
from typing import Any

from bench.common import (
    ROOT,
    InProcessApp,
    NumberPool,
    azurite,
    print_header,
    reset_peak_rss,
    rss_kib,
    send_body,
    storage_env,
    table,
    twilio_fake_process,
    write_results,
)
from gateway.queue import encode_message

BODY = "Benchmark message: your appointment is confirmed for 10:30 on Tuesday."


def child(config: dict[str, Any]) -> dict[str, Any]:
    app = InProcessApp(config["env"])
    pool = NumberPool()

    def accept(count: int, references_now: bool) -> uuid.UUID:
        body = json.dumps(send_body(pool.take(count), body=BODY, references_now=references_now)).encode()
        return uuid.UUID(app.send(body)["CommId"])

    def deliver(comm_id: uuid.UUID) -> None:
        app.deliver(encode_message(comm_id).encode())

    deliver(accept(1, False))  # warm: connection pools, key cache, provider session
    deliver(accept(1, True))
    baseline, _ = rss_kib()
    out: dict[str, Any] = {"baseline_kib": baseline, "phases": {}}
    count = config["recipients"]
    for name, references_now in (("accept", False), ("accept, references now", True), ("deliver", False)):
        if name == "deliver":
            ids = [accept(count, False), accept(count, False)]
            run = [lambda comm_id=comm_id: deliver(comm_id) for comm_id in ids]
        else:
            run = [lambda references_now=references_now: accept(count, references_now) for _ in range(2)]
        before, _ = rss_kib()
        reset = reset_peak_rss()
        run[0]()
        after, peak = rss_kib()
        tracemalloc.start()
        run[1]()
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["phases"][name] = {"rss_before_kib": before, "peak_kib": peak if reset else None,
                               "rss_after_kib": after, "python_peak_kib": traced_peak // 1024}
    out["ru_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    app.close()
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=1000, help="recipients of the measured message")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    print_header("memory", args)
    with azurite() as server, twilio_fake_process() as twilio:
        config = {"env": storage_env(server.connection_string, **twilio.env()), "recipients": args.recipients}
        done = subprocess.run([sys.executable, "-m", "bench.memory", "--child", json.dumps(config)], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                              timeout=600, check=False)
    if done.returncode != 0:
        print(done.stderr[-4000:], file=sys.stderr)
        return 1
    result = json.loads(done.stdout.strip().splitlines()[-1])
    baseline = result["baseline_kib"]
    rows = [["baseline: after imports, Gateway and one warm-up send", "-", baseline / 1024, "-", 1.0, "-"]]
    for name, phase in result["phases"].items():
        peak = phase["peak_kib"]
        rows.append([f"{name}, {args.recipients} recipients", phase["rss_before_kib"] / 1024,
                     "n/a" if peak is None else peak / 1024,
                     "n/a" if peak is None else (peak - phase["rss_before_kib"]) / 1024,
                     "n/a" if peak is None else peak / baseline, phase["python_peak_kib"] / 1024])
    rows.append(["whole run (getrusage ru_maxrss)", "-", result["ru_maxrss_kib"] / 1024, "-",
                 result["ru_maxrss_kib"] / baseline, "-"])
    print(table(["phase", "RSS before MiB", "peak RSS MiB", "peak - before MiB", "peak / baseline",
                 "Python peak MiB (tracemalloc)"], rows))
    path = write_results("memory", args, result)
    print(f"results: {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
