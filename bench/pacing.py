"""Per-sender pacing across hosts: how fast one sender's messages reach the provider, paced and not.

Starts Azurite, a Twilio fake in this process that answers each create after ``--latency`` (a
realistic round trip) and notes when each arrived, and ``--hosts`` local hosts (``python -m devhost``,
queue listeners on) on the one Azurite. Sends ``--communications`` messages of ``--recipients`` each,
all from one sender, spread over the hosts, queued (not immediate); waits until every one is final.
Without fan-out one communication is delivered by one host at a time, so several communications are
what puts the two hosts to work for the same sender. The baseline is the same run with
``SMS_SENDER_RATE_PER_SECOND`` unset; the goal is the issue's: at ``--rate`` 20, 200 messages take at
least 9 s and no one-second window holds more than 22 provider calls.

    python -m bench.pacing [--rate 20] [--communications 4] [--recipients 50] [--hosts 2]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

import requests

from bench.common import LICENSEE, NumberPool, azurite, print_header, send_body, storage_env, table, write_results
from fakes.twilio import TwilioFake
from tests.server import GatewayServer

FINAL = {"Sent", "PartiallySent", "Failed"}
BURST_ALLOWANCE = 1.1  # the goal's 22 calls a second at 20/s


class TimedTwilioFake(TwilioFake):
    """The Twilio fake, answering each create after ``latency`` seconds and noting when each arrived."""

    def __init__(self, latency: float) -> None:
        super().__init__()
        self.latency = latency
        self.arrivals: list[float] = []
        self._lock = threading.Lock()

    def create(self, params: dict[str, Any], auth_user: str) -> dict[str, Any]:
        with self._lock:
            self.arrivals.append(time.monotonic())
        time.sleep(self.latency)
        return super().create(params, auth_user)


def busiest_second(arrivals: Sequence[float]) -> int:
    """The most calls in any one-second window [t, t + 1) that starts at a call."""
    times = sorted(arrivals)
    return max((bisect_left(times, start + 1.0) - index for index, start in enumerate(times)), default=0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pacing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20.0, help="SMS_SENDER_RATE_PER_SECOND of the paced run")
    parser.add_argument("--communications", type=int, default=4, help="communications, all from one sender")
    parser.add_argument("--recipients", type=int, default=50, help="recipients of each communication")
    parser.add_argument("--hosts", type=int, default=2, help="local hosts on the one Azurite")
    parser.add_argument("--latency", type=float, default=0.15, help="seconds the Twilio fake takes per create")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for every message to end")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, connection: str, rate: float | None) -> dict[str, Any]:
    """One run: fresh tables and queue, the hosts started with or without pacing, every message to the end."""
    from gateway.runtime import Gateway
    from gateway.settings import Settings

    with TimedTwilioFake(args.latency) as fake:
        env = storage_env(connection, SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID=fake.account_sid,
                          TWILIO_AUTH_TOKEN=fake.auth_token, TWILIO_BASE_URL=fake.base_url,
                          SMS_RETRY_BASE_SECONDS="1", **({"SMS_SENDER_RATE_PER_SECOND": f"{rate:g}"} if rate else {}))
        gateway = Gateway.create(Settings.from_env(env))
        gateway.ensure_resources()
        key = gateway.keys.create(LICENSEE, "pacing")[1]
        hosts = [GatewayServer.start(env) for _ in range(args.hosts)]
        try:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {key}"
            pool = NumberPool()
            started = time.monotonic()
            comm_ids = []
            for index in range(args.communications):
                host = hosts[index % len(hosts)]
                answer = session.post(f"{host.url}/api/sms/send", json=send_body(pool.take(args.recipients)),
                                      timeout=60)
                answer.raise_for_status()
                comm_ids.append(answer.json()["CommId"])
            pending, statuses = set(comm_ids), {}
            while pending and time.monotonic() - started < args.timeout:
                for comm_id in sorted(pending):
                    status = session.get(f"{hosts[0].url}/api/sms/{comm_id}", timeout=30).json()
                    if status["Status"] in FINAL:
                        statuses[comm_id] = status
                        pending.discard(comm_id)
                if pending:
                    time.sleep(1.0)  # the fake shares this process: polling less disturbs its arrival times
            finished = time.monotonic()
        finally:
            for host in hosts:
                host.stop()
        arrivals = list(fake.arrivals)
    sent = sum(1 for status in statuses.values() for r in status["Recipients"] if r["Status"] == "Sent")
    first, last = (min(arrivals), max(arrivals)) if arrivals else (started, started)
    return {
        "rate": rate,
        "recipients": args.communications * args.recipients,
        "sent": sent,
        "unfinished": len(pending),
        "provider_calls": len(arrivals),
        "busiest_second": busiest_second(arrivals),
        "first_to_last_call_s": round(last - first, 2),
        "accept_to_final_s": round(finished - started, 2),
        "calls_per_s": round((len(arrivals) - 1) / (last - first), 1) if last > first else None,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_header("pacing", args)
    with azurite() as server:
        baseline = run(args, server.connection_string, None)
        paced = run(args, server.connection_string, args.rate)
    total = args.communications * args.recipients
    least_seconds = (total - 1) / args.rate - 1  # the goal's 9 s for 200 at 20/s, calls at window starts
    most_in_a_second = int(args.rate * BURST_ALLOWANCE)
    rows = [["unpaced (baseline)", *[baseline[k] for k in COLUMNS]], [f"paced at {args.rate:g}/s",
                                                                      *[paced[k] for k in COLUMNS]]]
    print(table(["run", *COLUMNS], rows))
    met = (paced["sent"] == total and paced["busiest_second"] <= most_in_a_second
           and paced["first_to_last_call_s"] >= least_seconds)
    print(f"\ngoal: every recipient sent, busiest second <= {most_in_a_second} calls, first to last call >= "
          f"{least_seconds:.1f} s: {'met' if met else 'MISSED'}")
    write_results("pacing", args, {"baseline": baseline, "paced": paced, "goal_met": met})
    return 0 if met else 1


COLUMNS = ["recipients", "sent", "unfinished", "provider_calls", "busiest_second", "first_to_last_call_s",
           "accept_to_final_s", "calls_per_s"]

if __name__ == "__main__":
    sys.exit(main())
