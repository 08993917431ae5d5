"""The local host over HTTP, for reference: ``python -m devhost`` at concurrency 1, 8 and 32.

The gateway runs as users run it locally (a ``python -m devhost`` subprocess, queue worker and
timers off so only accepting is measured) on Azurite; the baseline is ``bench.floor_server``, a
stdlib threading HTTP server doing only the floor's accept (one entity insert, one queue message),
also closing every connection as the devhost does. Clients are threads, each with its own
``requests.Session``, sending 1-recipient SMS to ``/api/sendmessage``; each level is bounded by a
request count and a time limit, and levels alternate between ours and the floor. The load
generator shares the machine's cores with both servers and Azurite, so these are figures for
comparison, not capacity.

    python -m bench.http [--concurrency 1,8,32] [--requests 300] [--seconds 20] [--warmup 20]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from typing import Any

import requests

from bench.common import (
    LICENSEE,
    ROOT,
    NumberPool,
    azurite,
    percentile,
    print_header,
    send_body,
    storage_env,
    table,
    write_results,
)
from devhost.azurite import free_port
from tests.server import GatewayServer


def load(url: str, headers: dict[str, str], pool: NumberPool, concurrency: int, total: int,
         seconds: float) -> dict[str, Any]:
    lock = threading.Lock()
    remaining = [total]
    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    deadline = time.monotonic() + seconds

    def client() -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                payload = send_body(pool.take(1))
                start = time.perf_counter()
                try:
                    status: int | str = session.post(url, json=payload, headers=headers, timeout=30).status_code
                except requests.RequestException as error:
                    reason = error.args[0] if error.args else error
                    status = f"{type(error).__name__}: {type(getattr(reason, 'reason', reason)).__name__}"
                elapsed = time.perf_counter() - start
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == 200:
                        latencies.append(elapsed)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {"concurrency": concurrency, "ok": len(latencies), "statuses": statuses, "seconds": wall,
            "throughput_per_s": len(latencies) / wall if wall else 0.0,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated client thread counts")
    parser.add_argument("--requests", type=int, default=300, help="requests per level and target (at most)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit per level and target")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests to each target first")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_header("http", args)
    from gateway.runtime import Gateway
    from gateway.settings import Settings

    levels = []
    with azurite() as server:
        env = storage_env(server.connection_string)
        gateway = Gateway.create(Settings.from_env(env))
        gateway.ensure_resources()
        key = gateway.keys.create(LICENSEE, "bench")[1]
        ours = GatewayServer.start(env, "--no-queues", "--no-timers")
        port = free_port()
        floor = subprocess.Popen(
            [sys.executable, "-m", "bench.floor_server", "--connection", server.connection_string, "--port",
             str(port), "--table", f"{env['SMS_TABLE_PREFIX']}Floor", "--queue", f"{env['SMS_QUEUE_NAME']}-floor"],
            cwd=ROOT)
        try:
            floor_url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    requests.get(floor_url, timeout=2)
                    break
                except requests.ConnectionError:
                    if time.monotonic() > deadline or floor.poll() is not None:
                        raise RuntimeError("the floor server did not start") from None
                    time.sleep(0.1)
            targets = {"ours": (f"{ours.url}/api/sendmessage", {"Authorization": f"Bearer {key}"}),
                       "floor": (f"{floor_url}/api/sendmessage", {})}
            pool = NumberPool()
            for url, headers in targets.values():
                load(url, headers, pool, 1, args.warmup, args.seconds)
            for index, concurrency in enumerate(int(part) for part in args.concurrency.split(",")):
                order = ["ours", "floor"] if index % 2 == 0 else ["floor", "ours"]
                result = {name: load(*targets[name], pool, concurrency, args.requests, args.seconds) for name in order}
                levels.append({"concurrency": concurrency, "ours": result["ours"], "floor": result["floor"],
                               "ratio": result["ours"]["throughput_per_s"] / result["floor"]["throughput_per_s"]})
        finally:
            ours.stop()
            floor.terminate()
            floor.wait(timeout=10)
    rows = []
    for level in levels:
        ours_level, floor_level = level["ours"], level["floor"]
        errors = sum(count for status, count in ours_level["statuses"].items() if status != 200)
        rows.append([level["concurrency"], ours_level["ok"], errors, ours_level["throughput_per_s"],
                     floor_level["throughput_per_s"], ours_level["p50_ms"], floor_level["p50_ms"],
                     ours_level["p99_ms"], floor_level["p99_ms"], level["ratio"]])
    print(table(["concurrency", "ours ok", "ours errors", "ours req/s", "floor req/s", "ours p50 ms", "floor p50 ms",
                 "ours p99 ms", "floor p99 ms", "ours/floor"], rows))
    path = write_results("http", args, {"levels": levels})
    print(f"results: {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
