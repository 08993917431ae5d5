"""One large send delivered end to end on the local host: fan-out across instances, concurrent provider calls.

Starts Azurite, the Twilio fake (each Message answered after ``--delay`` seconds, a realistic round trip
to Twilio) and ``--hosts`` ``python -m devhost`` processes on the same storage, each with its queue
listeners (host.json: 16 messages at once). One POST of ``--recipients`` recipients goes to the first
host; the clock runs from the POST until ``GET /api/sms/{CommId}`` says the communication is final.
Every recipient must get exactly one SMS at the fake.

A case is HOSTSxCONCURRENCY (``SMS_PROVIDER_CONCURRENCY``). The same-run baseline is what one worker
sending in turn costs at least: recipients times delay (main before issue 12 sent that way, one run after
another; the issue measured it not final after 120 s).

    python -m bench.fanout [--recipients 1000] [--delay 0.15] [--cases 1x1,1x10,2x10]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from typing import Any

import requests

from bench.common import LICENSEE, azurite, numbers, print_header, send_body, storage_env, table, write_results
from fakes.server import Fault
from fakes.twilio import TwilioFake
from tests.server import GatewayServer

FINAL = {"Sent", "PartiallySent", "Failed"}
GOAL_SECONDS = 15.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=1000, help="recipients of the one send")
    parser.add_argument("--delay", type=float, default=0.15, help="seconds the Twilio fake takes per Message")
    parser.add_argument("--cases", default="1x1,1x10,2x10", help="HOSTSxSMS_PROVIDER_CONCURRENCY, comma-separated")
    parser.add_argument("--timeout", type=float, default=300.0, help="give a case up after this many seconds")
    return parser.parse_args(argv)


def run_case(env: dict[str, str], key: str, fake: TwilioFake, hosts: int, concurrency: int, recipients: list[str],
             delay: float, timeout: float) -> dict[str, Any]:
    fake.push_fault(*[Fault(delay=delay)] * len(recipients))
    servers = [GatewayServer.start({**env, "SMS_PROVIDER_CONCURRENCY": str(concurrency)}) for _ in range(hosts)]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    before = len(fake.messages)
    try:
        started = time.monotonic()
        answer = session.post(f"{servers[0].url}/api/sendmessage", json=send_body(recipients), timeout=60)
        answer.raise_for_status()
        accepted = time.monotonic() - started
        comm_id = answer.json()["CommId"]
        status = ""
        while time.monotonic() - started < timeout:
            status = session.get(f"{servers[0].url}/api/sms/{comm_id}", timeout=30).json()["Status"]
            if status in FINAL:
                break
            time.sleep(0.1)
        final = time.monotonic() - started
    finally:
        for server in servers:
            server.stop()
    created = Counter(message.to for message in fake.messages[before:])
    return {"hosts": hosts, "concurrency": concurrency, "recipients": len(recipients), "status": status,
            "accept_seconds": accepted, "seconds_to_final": final,
            "sms": sum(created.values()), "duplicates": sum(count - 1 for count in created.values() if count > 1),
            "missing": sum(1 for number in recipients if number not in created)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_header("fanout", args)
    from gateway.runtime import Gateway
    from gateway.settings import Settings

    results = []
    with azurite() as server, TwilioFake() as fake:
        env = storage_env(server.connection_string, SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID=fake.account_sid,
                          TWILIO_AUTH_TOKEN=fake.auth_token, TWILIO_BASE_URL=fake.base_url)
        gateway = Gateway.create(Settings.from_env(env))
        gateway.ensure_resources()
        key = gateway.keys.create(LICENSEE, "fanout")[1]
        for index, case in enumerate(args.cases.split(",")):
            hosts, concurrency = (int(part) for part in case.lower().split("x"))
            recipients = numbers(args.recipients, offset=index * args.recipients)
            results.append(run_case(env, key, fake, hosts, concurrency, recipients, args.delay, args.timeout))
    baseline = args.recipients * args.delay
    print(table(["hosts", "concurrency", "status", "accept s", "final s", "goal", "in turn s", "speed-up",
                 "SMS", "duplicates", "missing"],
                [[r["hosts"], r["concurrency"], r["status"], r["accept_seconds"], r["seconds_to_final"],
                  GOAL_SECONDS, baseline, baseline / r["seconds_to_final"], r["sms"], r["duplicates"], r["missing"]]
                 for r in results]))
    write_results("fanout", args, {"cases": results, "in_turn_seconds": baseline, "goal_seconds": GOAL_SECONDS})
    broken = any(r["duplicates"] or r["missing"] or r["status"] not in FINAL for r in results)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
