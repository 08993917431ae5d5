"""A bounded soak: mixed traffic over HTTP to the devhost, its queue worker delivering to a faulty Twilio.

For ``--seconds`` (default 60) client threads send, at about ``--rate`` requests per second,
queued and immediate SMS of 1-20 recipients; some requests carry an invalid number (a 400:
nothing may be accepted or sent) and some a number Twilio refuses for good (+15005550001: that
recipient ends Failed). Every request's body holds a unique marker. The devhost
(``python -m devhost``, queue worker and timers on, ``SMS_RETRY_BASE_SECONDS=1``) sends
through the Twilio fake from fakes/, which answers a scripted share of requests with 500
or 429 ``Retry-After: 1`` (``--fault-every`` seconds, alternating).

Then it waits (at most ``--drain-seconds``) until every accepted CommId is final according to
``GET /api/sms/{CommId}`` and checks:

* every accepted communication reached Sent, PartiallySent or Failed;
* no (marker, To) was created at the fake more than once (no recipient sent twice);
* every recipient the gateway reports Sent has exactly one message at the fake, with that sid,
  and the fake holds nothing the gateway does not report Sent;
* nothing of a refused request reached the fake, and no request got a 5xx.

It prints a summary and exits 1 on any violation.

    python -m bench.soak [--seconds 60] [--rate 8] [--clients 4] [--fault-every 0.5] [--drain-seconds 120]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests

from bench.common import LICENSEE, NumberPool, azurite, print_header, storage_env, table, write_results
from fakes.server import Fault
from fakes.twilio import TwilioFake
from tests.server import GatewayServer

MARKER = re.compile(r"soak-[0-9a-f]{32}")
FINAL = {"Sent", "PartiallySent", "Failed"}
REFUSED_BY_TWILIO = "+15005550001"  # Twilio's magic "invalid number": a permanent failure
INVALID = "+44123"


@dataclass
class Accepted:
    comm_id: str
    marker: str
    recipients: list[str]
    immediate: bool


@dataclass
class Record:
    statuses: Counter[int] = field(default_factory=Counter)
    accepted: list[Accepted] = field(default_factory=list)
    refused_markers: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def client(url: str, key: str, pool: NumberPool, record: Record, stop: threading.Event, interval: float,
           seed: int) -> None:
    rng = random.Random(seed)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    next_at = time.monotonic()
    while not stop.is_set():
        next_at += interval
        marker = f"soak-{uuid.uuid4().hex}"
        count = rng.randint(1, 20)
        recipients = pool.take(count)
        roll = rng.random()
        if roll < 0.08:
            recipients[rng.randrange(count)] = INVALID
        elif roll < 0.16:
            recipients[rng.randrange(count)] = REFUSED_BY_TWILIO
        immediate = rng.random() < 0.3
        route = "/api/sms/send/immediate" if immediate else rng.choice(["/api/sendmessage", "/api/send",
                                                                           "/api/sms/send"])
        body = {"SMSModel": {"To": [{"PhoneNumber": number} for number in recipients],
                             "MessageBody": f"{marker} your code is {rng.randint(1000, 9999)}"},
                "CreateCommunicationReferencesImmediately": rng.random() < 0.5}
        try:
            response = session.post(url + route, json=body, timeout=60)
            status = response.status_code
        except requests.RequestException as error:
            status, response = 0, None
            with record.lock:
                record.server_errors.append(f"{route}: {type(error).__name__}")
        with record.lock:
            record.statuses[status] += 1
            if status == 200 and response is not None:
                record.accepted.append(Accepted(response.json()["CommId"], marker, recipients, immediate))
            elif status != 0:
                record.refused_markers.append(marker)
                if status >= 500:
                    record.server_errors.append(f"{route}: {status} {response.text[:200] if response else ''}")
        stop.wait(max(0.0, next_at - time.monotonic()))


def inject_faults(fake: TwilioFake, stop: threading.Event, every: float, pushed: Counter[str]) -> None:
    faults = [("500", Fault(status=500)), ("429", Fault(status=429, retry_after="1"))]
    index = 0
    while not stop.wait(every):
        name, fault = faults[index % len(faults)]
        fake.push_fault(fault)
        pushed[name] += 1
        index += 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to send")
    parser.add_argument("--rate", type=float, default=8.0, help="requests per second, all clients together")
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    parser.add_argument("--fault-every", type=float, default=0.5, help="seconds between scripted faults")
    parser.add_argument("--drain-seconds", type=float, default=120.0, help="longest wait for every comm to end")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_header("soak", args)
    from gateway.runtime import Gateway
    from gateway.settings import Settings

    record, pushed = Record(), Counter[str]()
    violations: list[str] = []
    final: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    with azurite() as server, TwilioFake() as fake:
        env = storage_env(server.connection_string, SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID=fake.account_sid,
                          TWILIO_AUTH_TOKEN=fake.auth_token, TWILIO_BASE_URL=fake.base_url,
                          SMS_RETRY_BASE_SECONDS="1", SMS_SWEEP_SCHEDULE="0 */5 * * * *",
                          SMS_RECEIPT_CHECK_SCHEDULE="0 0 0 1 1 *", SMS_RETENTION_SCHEDULE="0 0 0 1 1 *",
                          SMS_API_KEY_CACHE_SECONDS="60")
        gateway = Gateway.create(Settings.from_env(env))
        gateway.ensure_resources()
        key = gateway.keys.create(LICENSEE, "soak")[1]
        host = GatewayServer.start(env)
        try:
            stop = threading.Event()
            pool = NumberPool()
            interval = args.clients / args.rate
            threads = [threading.Thread(target=client, args=(host.url, key, pool, record, stop, interval,
                                                             args.seed * 1000 + n), daemon=True)
                       for n in range(args.clients)]
            threads.append(threading.Thread(target=inject_faults, args=(fake, stop, args.fault_every, pushed),
                                            daemon=True))
            for thread in threads:
                thread.start()
            stop.wait(args.seconds)
            stop.set()
            for thread in threads:
                thread.join(timeout=90)
            sending_done = time.monotonic()
            pending = {item.comm_id for item in record.accepted}
            deadline = time.monotonic() + args.drain_seconds
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {key}"
            while pending and time.monotonic() < deadline:
                for comm_id in sorted(pending):
                    answer = session.get(f"{host.url}/api/sms/{comm_id}", timeout=30)
                    if answer.status_code == 200 and answer.json()["Status"] in FINAL:
                        final[comm_id] = answer.json()
                        pending.discard(comm_id)
                if pending:
                    time.sleep(1.0)
            drained = time.monotonic()
        finally:
            host.stop()
        created = list(fake.messages)
        seen_requests = list(fake.requests)

    # ---- checks ---------------------------------------------------------------------------------------------
    for comm_id in sorted({item.comm_id for item in record.accepted} - set(final)):
        violations.append(f"comm {comm_id} did not reach a final state within {args.drain_seconds:.0f} s")
    by_pair = Counter((MARKER.search(m.body or "").group(0) if MARKER.search(m.body or "") else "?", m.to)
                      for m in created)
    for (marker, to), times in by_pair.items():
        if times > 1:
            violations.append(f"{to} of {marker} was sent {times} times")
    sids = {m.sid: (MARKER.search(m.body or "").group(0) if MARKER.search(m.body or "") else "?", m.to)
            for m in created}
    reported: set[str] = set()
    markers = {item.comm_id: item.marker for item in record.accepted}
    for comm_id, status in final.items():
        for recipient in status["Recipients"]:
            if recipient["Status"] != "Sent":
                continue
            sid = recipient.get("ProviderMessageId")
            reported.add(sid)
            if sids.get(sid) != (markers[comm_id], recipient["PhoneNumber"]):
                violations.append(f"comm {comm_id}: {recipient['PhoneNumber']} is Sent as {sid}, unknown at the fake")
    final_markers = {markers[comm_id] for comm_id in final}
    for sid in set(sids) - reported:
        if sids[sid][0] in final_markers or sids[sid][0] == "?":
            violations.append(f"the fake holds {sid} ({sids[sid]}) which the gateway does not report Sent")
    refused = set(record.refused_markers)
    for marker, to in by_pair:
        if marker in refused:
            violations.append(f"{to} of refused request {marker} reached the fake")
    violations.extend(f"server error: {text}" for text in record.server_errors)

    statuses = Counter(status["Status"] for status in final.values())
    recipients = Counter(r["Status"] for status in final.values() for r in status["Recipients"])
    errors = Counter(r["ErrorCode"] for status in final.values() for r in status["Recipients"] if r.get("ErrorCode"))
    retried = sum(1 for status in final.values() for r in status["Recipients"] if (r.get("Attempts") or 0) > 1)
    fake_statuses = Counter(seen.status for seen in seen_requests if seen.method == "POST")
    summary = [
        ["sending", f"{sending_done - started:.0f} s, then draining {drained - sending_done:.1f} s"],
        ["requests by HTTP status", ", ".join(f"{k}: {v}" for k, v in sorted(record.statuses.items()))],
        ["communications accepted", len(record.accepted)],
        ["  immediate / queued", f"{sum(a.immediate for a in record.accepted)} / "
                                  f"{sum(not a.immediate for a in record.accepted)}"],
        ["communications final", ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())) or "none"],
        ["recipients", ", ".join(f"{k}: {v}" for k, v in sorted(recipients.items())) or "none"],
        ["recipient error codes", ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "none"],
        ["recipients that needed more than one attempt", retried],
        ["faults scripted at the fake", ", ".join(f"{k}: {v}" for k, v in sorted(pushed.items()))],
        ["POSTs at the fake by answer", ", ".join(f"{k}: {v}" for k, v in sorted(fake_statuses.items()))],
        ["messages created at the fake", len(created)],
        ["violations", len(violations)],
    ]
    print(table(["soak", "value"], summary))
    for violation in violations[:50]:
        print(f"VIOLATION: {violation}")
    write_results("soak", args, {"summary": {row[0].strip(): row[1] for row in summary},
                                 "violations": violations})
    print("PASS: every accepted communication ended, nobody was sent twice" if not violations else "FAIL")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
