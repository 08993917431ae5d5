"""kill -9 of the local host mid-load, then client retries with the same Idempotency-Key: nobody is sent twice.

Starts Azurite and the Twilio fake (which records every Message it creates) and ``python -m devhost``
with its queue worker, sending through the fake. ``--clients`` threads fire ``--requests`` sends, each
with its own Idempotency-Key, its own recipient and a marker in its body and Notes; every other send is
``/immediate``, and the fake holds each create for ``--provider-delay`` seconds so deliveries are under
way when the host dies. Once ``--kill-at`` of the requests have started, the host is killed with
SIGKILL and the clients start no more. Then:

1. the host is started again on the same storage;
2. every request whose answer never came (in flight at the kill, or never started) is sent again with
   its key, as a client would retry: a 409 or 503 is retried after its Retry-After;
3. the sweep runs once, as its timer would: the dead worker's queue messages stay hidden for the host's
   processing lease (10 minutes), and the sweep is what re-queues a communication whose message is out
   of sight; it runs here with its clock moved past ``SMS_SWEEP_AFTER_SECONDS``, the code the timer runs;
4. it waits until every communication is final.

Checks: every key maps to one CommId (every answer it ever got, before and after the kill, and one
stored communication per marker); every recipient got exactly one SMS at the fake, and the fake holds
nothing else; every communication ended Sent. It prints the figures and exits 1 on any violation.

    python -m bench.crash [--requests 200] [--clients 16] [--kill-at 0.5] [--provider-delay 0.2]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import requests

from bench.common import LICENSEE, azurite, numbers, print_header, storage_env, table, write_results
from fakes.server import Fault
from fakes.twilio import TwilioFake
from tests.server import GatewayServer

FINAL = {"Sent", "PartiallySent", "Failed"}
CLAIM_TIMEOUT_SECONDS = 5  # claims the dead host left expire this soon (330 s by default)


@dataclass
class Send:
    """One client request: its key, recipient and marker, and every answer it got."""

    index: int
    key: str
    to: str
    marker: str
    immediate: bool
    started: bool = False
    answers: list[dict[str, Any]] = field(default_factory=list)  # 200 answers only
    statuses: list[int] = field(default_factory=list)  # every HTTP status, 0 for no answer

    @property
    def route(self) -> str:
        return "/api/sendmessage/immediate" if self.immediate else "/api/sendmessage"

    @property
    def body(self) -> dict[str, Any]:
        return {"SMSModel": {"To": [{"PhoneNumber": self.to}], "MessageBody": f"{self.marker} your code",
                             "Notes": self.marker}}


@dataclass
class Report:
    requests: int
    answered_before_kill: int
    in_flight_at_kill: int
    never_started: int
    stored_before_retry: int  # of those in flight: accepted before the host died (their retry found them)
    retry_statuses: Counter[int]
    duplicates: int
    seconds_to_answers: float  # from the restart until every request has its answer
    seconds_to_final: float  # from the restart until every communication is final
    violations: list[str]


def post(session: requests.Session, url: str, send: Send) -> int:
    """One attempt; the HTTP status, or 0 when no answer came (the host died)."""
    try:
        response = session.post(url + send.route, json=send.body, headers={"Idempotency-Key": send.key}, timeout=60)
    except requests.RequestException:
        send.statuses.append(0)
        return 0
    send.statuses.append(response.status_code)
    if response.status_code == 200:
        send.answers.append(response.json())
    return response.status_code


def first_round(url: str, api_key: str, sends: list[Send], clients: int, kill_after: int,
                killed: threading.Event, kill: threading.Event) -> None:
    """Clients fire the sends until the host is killed; the ``kill_after``-th start asks for the kill."""
    lock = threading.Lock()
    queue = iter(sends)
    started = 0

    def client() -> None:
        nonlocal started
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {api_key}"
        while not killed.is_set():
            with lock:
                send = next(queue, None)
                if send is None:
                    return
                send.started = True
                started += 1
                if started >= kill_after:
                    kill.set()
            post(session, url, send)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)


def retry_round(url: str, api_key: str, sends: list[Send], clients: int, deadline: float) -> list[str]:
    """Send every unanswered request again with its key until it is answered; what went wrong, if anything."""
    lock = threading.Lock()
    queue = iter(sends)
    problems: list[str] = []

    def client() -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {api_key}"
        while True:
            with lock:
                send = next(queue, None)
            if send is None:
                return
            while time.monotonic() < deadline:
                status = post(session, url, send)
                if status == 200:
                    break
                if status in (0, 409, 503):
                    time.sleep(1.0)
                    continue
                with lock:
                    problems.append(f"request {send.index}: retry answered {status}")
                break

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return problems


def run(requests_count: int = 200, clients: int = 16, kill_at: float = 0.5, provider_delay: float = 0.2,
        drain_seconds: float = 120.0) -> Report:
    from gateway import worker
    from gateway.runtime import Gateway, use_gateway
    from gateway.settings import Settings
    from gateway.storage import utcnow

    sends = [Send(index, str(uuid.uuid4()), to, f"crash-{uuid.uuid4().hex}", immediate=index % 2 == 1)
             for index, to in enumerate(numbers(requests_count, offset=1000))]
    with azurite() as server, TwilioFake() as fake:
        env = storage_env(server.connection_string, SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID=fake.account_sid,
                          TWILIO_AUTH_TOKEN=fake.auth_token, TWILIO_BASE_URL=fake.base_url,
                          SMS_RETRY_BASE_SECONDS="1", SMS_CLAIM_TIMEOUT_SECONDS=str(CLAIM_TIMEOUT_SECONDS))
        gateway = Gateway.create(Settings.from_env(env))
        gateway.ensure_resources()
        api_key = gateway.keys.create(LICENSEE, "crash")[1]
        fake.push_fault(*[Fault(delay=provider_delay)] * requests_count)
        host = GatewayServer.start(env)
        kill, killed = threading.Event(), threading.Event()

        def killer() -> None:
            kill.wait()
            host.process.kill()  # SIGKILL: no clean-up, as a crash
            killed.set()

        threading.Thread(target=killer, daemon=True).start()
        first_round(host.url, api_key, sends, clients, max(1, int(requests_count * kill_at)), killed, kill)
        kill.set()
        killed.wait()
        host.stop()

        restarted = time.monotonic()
        host = GatewayServer.start(env)
        try:
            unanswered = [send for send in sends if not send.answers]
            stored = stored_markers(gateway)
            violations = retry_round(host.url, api_key, unanswered, clients, restarted + drain_seconds)
            answered = time.monotonic()
            use_gateway(gateway)
            try:
                worker.sweep(now=utcnow() + timedelta(seconds=gateway.settings.sweep_after_seconds + 1))
            finally:
                use_gateway(None)
            final = wait_final(host.url, api_key, sends, restarted + drain_seconds)
            finished = time.monotonic()
        finally:
            host.stop()
        created = Counter(message.to for message in fake.messages)
        stored_after = stored_markers(gateway)

    for send in sends:
        comm_ids = {answer["CommId"] for answer in send.answers}
        if len(comm_ids) != 1:
            violations.append(f"request {send.index}: {len(comm_ids)} CommIds in its answers")
        if stored_after[send.marker] != 1:
            violations.append(f"request {send.index}: {stored_after[send.marker]} communications stored")
        if created[send.to] != 1:
            violations.append(f"request {send.index}: its recipient got {created[send.to]} SMS")
        status = final.get(send.answers[0]["CommId"]) if send.answers else None
        if status != "Sent":
            violations.append(f"request {send.index}: ended {status or 'not final'}")
    strangers = set(created) - {send.to for send in sends}
    violations.extend(f"the fake sent to {to}, which no request named" for to in sorted(strangers))
    in_flight = [send for send in unanswered if send.started]
    return Report(
        requests=requests_count,
        answered_before_kill=requests_count - len(unanswered),
        in_flight_at_kill=len(in_flight),
        never_started=len(unanswered) - len(in_flight),
        stored_before_retry=sum(1 for send in in_flight if stored[send.marker]),
        retry_statuses=Counter(status for send in unanswered for status in send.statuses[1 if send.started else 0:]),
        duplicates=sum(count - 1 for count in created.values() if count > 1),
        seconds_to_answers=answered - restarted,
        seconds_to_final=finished - restarted,
        violations=violations,
    )


def stored_markers(gateway: Any) -> Counter[str]:
    """How many communications carry each marker (in Notes): a scan of this run's own table."""
    from gateway.storage import HEADER_ROW

    table = gateway.clients.tables.get_table_client(gateway.settings.communications_table)
    return Counter(entity.get("Notes") for entity in table.query_entities(
        "RowKey eq @row", parameters={"row": HEADER_ROW}, select=["Notes"]))


def wait_final(url: str, api_key: str, sends: list[Send], deadline: float) -> dict[str, str]:
    """Each answered CommId's status once final (or as it was at the deadline)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api_key}"
    pending = {answer["CommId"] for send in sends for answer in send.answers[:1]}
    statuses: dict[str, str] = {}
    while pending and time.monotonic() < deadline:
        for comm_id in sorted(pending):
            answer = session.get(f"{url}/api/sms/{comm_id}", timeout=30)
            if answer.status_code == 200:
                statuses[comm_id] = answer.json()["Status"]
                if statuses[comm_id] in FINAL:
                    pending.discard(comm_id)
        if pending:
            time.sleep(0.5)
    return statuses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crash", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="sends, each with its own key and recipient")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--kill-at", type=float, default=0.5, help="share of the requests started at the kill")
    parser.add_argument("--provider-delay", type=float, default=0.2, help="seconds the fake holds each create")
    parser.add_argument("--drain-seconds", type=float, default=120.0, help="longest wait for every comm to end")
    args = parser.parse_args(argv)
    print_header("crash", args)
    report = run(args.requests, args.clients, args.kill_at, args.provider_delay, args.drain_seconds)
    rows = [
        ["requests (each its own key and recipient)", report.requests],
        ["answered before the kill", report.answered_before_kill],
        ["in flight at the kill", report.in_flight_at_kill],
        ["  of which stored before the host died", report.stored_before_retry],
        ["never started before the kill", report.never_started],
        ["retry answers by HTTP status", ", ".join(f"{k}: {v}" for k, v in sorted(report.retry_statuses.items()))],
        ["recipients sent more than once", report.duplicates],
        ["restart to every answer", f"{report.seconds_to_answers:.1f} s"],
        ["restart to every communication final", f"{report.seconds_to_final:.1f} s"],
        ["violations", len(report.violations)],
    ]
    print(table(["crash", "value"], rows))
    for violation in report.violations[:50]:
        print(f"VIOLATION: {violation}")
    write_results("crash", args, {"summary": {row[0].strip(): row[1] for row in rows},
                                  "violations": report.violations})
    print("PASS: every key one communication, every recipient one SMS" if not report.violations else "FAIL")
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
