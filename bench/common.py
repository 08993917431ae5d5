"""What every benchmark shares: Azurite, the app hosted in-process, the floor, counting, tables, results.

The *floor* is the least any correct implementation must do for the same job, done directly
with the Azure SDKs and ``requests``, with no validation, authentication, models or bookkeeping:
not a copy of our storage calls, but the cheapest durable ones (one entity is a plain insert, an
entity-group transaction only where several entities must be written together). Benchmarks report ours / floor, measured
in the same run, so a slower or busier machine moves both.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func
import requests
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.data.tables import TableServiceClient, UpdateMode
from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devhost.azurite import Azurite, isolated_env  # noqa: E402 - needs the repository root on sys.path

LICENSEE = uuid.UUID("5b3c7a1e-0d2f-4e8a-9c61-7f4e2a1b3c5d")
SENDER = "+15005550006"
TRANSACTION_LIMIT = 100


# --------------------------------------------------------------------------------------------------
# Machine, results, tables
# --------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    azurite = "unknown"
    with contextlib.suppress(OSError, ValueError):
        azurite = json.loads((ROOT / "node_modules" / "azurite" / "package.json").read_text())["version"]
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "azurite": azurite,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_results(name: str, args: Any, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {"benchmark": name, "machine": machine(), "args": vars(args) if args is not None else {}, **data}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (so it pastes straight into docs/performance.md)."""
    cells = [[str(h) for h in headers], *[[_cell(value) for value in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(text.ljust(widths[i]) for i, text in enumerate(row)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def print_header(name: str, args: Any) -> None:
    info = machine()
    print(f"# bench.{name}: {info['nproc']} x {info['cpu']}, Python {info['python']}, Azurite {info['azurite']}")
    if args is not None:
        print("# " + " ".join(f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if v is not None))
    sys.stdout.flush()


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of the values; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Timings:
    """Latencies (seconds) of individual operations, and the wall time spent doing them."""

    latencies: list[float] = field(default_factory=list)
    busy: float = 0.0
    units: int = 0  # what throughput counts (requests, recipients...)

    def time(self, action: Callable[[], Any], units: int = 1) -> Any:
        start = time.perf_counter()
        result = action()
        elapsed = time.perf_counter() - start
        self.latencies.append(elapsed)
        self.busy += elapsed
        self.units += units
        return result

    @property
    def throughput(self) -> float:
        return self.units / self.busy if self.busy else 0.0

    def summary(self) -> dict[str, float]:
        return {
            "count": len(self.latencies),
            "units": self.units,
            "throughput_per_s": self.throughput,
            "p50_ms": percentile(self.latencies, 50) * 1000,
            "p99_ms": percentile(self.latencies, 99) * 1000,
            "mean_ms": statistics.fmean(self.latencies) * 1000 if self.latencies else 0.0,
        }


def interleave(rounds: int, per_round: int, *runs: Callable[[], None]) -> None:
    """Alternate blocks of each run, rotating who goes first each round, so drift hits all alike."""
    for index in range(rounds):
        for offset in range(len(runs)):
            run = runs[(index + offset) % len(runs)]
            for _ in range(per_round):
                run()


# --------------------------------------------------------------------------------------------------
# Storage: Azurite, names, counting
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def azurite() -> Iterator[Azurite]:
    server = Azurite.start()
    try:
        yield server
    finally:
        server.stop()


def storage_env(connection: str, **overrides: str) -> dict[str, str]:
    """App settings on Azurite with table and queue names of their own; the sweep's timer fires only at new year
    (the timer needs a schedule: a benchmark that wants the sweep runs it itself, or sets its own)."""
    defaults = {"SMS_DEFAULT_SENDER": SENDER, "SMS_PROVIDER": "outbox", "SMS_API_KEY_CACHE_SECONDS": "3600",
                "SMS_SWEEP_SCHEDULE": "0 0 0 1 1 *",
                "SMS_RECEIPT_CHECK_SCHEDULE": "0 0 0 1 1 *", "SMS_RETENTION_SCHEDULE": "0 0 0 1 1 *"}
    return isolated_env(connection, **{**defaults, **overrides})


def operation(method: str, url: str, *, table: bool) -> str:
    """A short name for one storage request, e.g. ``table transaction`` or ``queue delete``."""
    segments = [part for part in urlsplit(url).path.split("/") if part]
    last = segments[-1] if segments else ""
    if table:
        if last == "$batch":
            return "table transaction"
        if last == "Tables" or last.startswith("Tables("):
            return f"table {method} Tables"
        if "PartitionKey=" in last:
            return "table read" if method == "GET" else f"table {method} entity"
        if method == "GET":
            return "table query"
        return "table insert" if method == "POST" else f"table {method}"
    if "messages" in segments:
        verbs = {"GET": "receive", "POST": "send", "DELETE": "delete", "PUT": "update"}
        return f"queue {verbs.get(method, method)}"
    return f"queue {method}"


class CountingPolicy(SansIOHTTPPolicy):
    """Counts every storage request (each try) by operation, thread-safely."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def on_request(self, request: Any) -> None:
        http = request.http_request
        # The table SDK marks its requests with DataServiceVersion; queue requests have none.
        name = operation(http.method, http.url, table="DataServiceVersion" in http.headers)
        with self._lock:
            self.counts[name] += 1

    def take(self) -> Counter[str]:
        """The counts since the last take, and start again from zero."""
        with self._lock:
            counts, self.counts = self.counts, Counter()
        return counts


NUMBER_SPACE = 10_000_000


def numbers(count: int, offset: int = 0) -> list[str]:
    """Distinct valid UK mobile numbers in E.164 (+44 7100 000000 to +44 7109 999999)."""
    return [f"+44710{index % NUMBER_SPACE:07d}" for index in range(offset, offset + count)]


class NumberPool:
    """Hands out numbers never handed out before in this run, so no cache anywhere can flatter us."""

    def __init__(self) -> None:
        self._next = 0
        self._lock = threading.Lock()

    def take(self, count: int) -> list[str]:
        with self._lock:
            start, self._next = self._next, self._next + count
        return numbers(count, start)


def send_body(recipients: Sequence[str], *, body: str = "Benchmark message", references_now: bool = False,
              notes: str | None = None) -> dict[str, Any]:
    model: dict[str, Any] = {
        "From": {"PhoneNumber": SENDER},
        "To": [{"PhoneNumber": number} for number in recipients],
        "MessageBody": body,
    }
    if notes is not None:
        model["Notes"] = notes
    return {"SMSModel": model, "CreateCommunicationReferencesImmediately": references_now}


# --------------------------------------------------------------------------------------------------
# The app, hosted in-process the way the Functions worker hosts it
# --------------------------------------------------------------------------------------------------


class InProcessApp:
    """``function_app`` with our own Gateway (optionally counting its storage requests).

    HTTP functions get an ``azure.functions.HttpRequest`` and queue functions an
    ``azure.functions.queue.QueueMessage``, handed to the user function that
    ``function_app.app.get_functions()`` → ``get_user_function()`` returns: what the worker calls.
    """

    def __init__(self, env: dict[str, str], *, policies: Sequence[SansIOHTTPPolicy] = ()) -> None:
        os.environ.update(env)
        from gateway.settings import get_settings

        get_settings.cache_clear()
        import function_app
        from devhost.functions import discover_functions
        from gateway.connections import StorageClients
        from gateway.runtime import Gateway, use_gateway

        settings = get_settings()
        clients = StorageClients.create(settings.storage, connections=settings.concurrent_calls, policies=policies)
        self.gateway = Gateway.create(settings, clients=clients)
        self.gateway.ensure_resources()
        use_gateway(self.gateway)
        self.functions = {spec.name: spec for spec in discover_functions(function_app.app)}
        self.key = self.gateway.keys.create(LICENSEE, "bench")[1]

    def http(self, name: str, body: bytes, *, method: str = "POST", path: str = "/api/sendmessage",
             route_params: dict[str, str] | None = None) -> func.HttpResponse:
        spec = self.functions[name]
        request = func.HttpRequest(
            method,
            f"http://127.0.0.1:7071{path}",
            headers={"authorization": f"Bearer {self.key}", "content-type": "application/json"},
            params={},
            route_params=route_params or {},
            body=body,
        )
        return spec.function(**{spec.arg_name: request})

    def send(self, body: bytes, *, name: str = "sendmessage") -> dict[str, Any]:
        response = self.http(name, body)
        if response.status_code != 200:
            raise RuntimeError(f"send answered {response.status_code}: {response.get_body()[:300]!r}")
        return json.loads(response.get_body())

    def deliver(self, body: bytes, *, message_id: str | None = None, dequeue_count: int = 1) -> None:
        spec = self.functions["deliver"]
        message = QueueMessage(id=message_id or uuid.uuid4().hex, body=body, dequeue_count=dequeue_count,
                               pop_receipt="bench")
        spec.function(**{spec.arg_name: message})

    def close(self) -> None:
        from gateway.runtime import use_gateway

        use_gateway(None)


# --------------------------------------------------------------------------------------------------
# The floor: the same storage operations (and provider calls), written directly against the SDKs
# --------------------------------------------------------------------------------------------------


class Floor:
    """A minimal SMS gateway with nothing but the storage operations and provider calls."""

    def __init__(self, connection: str, table_name: str, queue_name: str, *,
                 policies: Sequence[SansIOHTTPPolicy] = (), twilio: TwilioEndpoint | None = None) -> None:
        from gateway.connections import observer_options

        hooks = observer_options(policies)
        self.service = TableServiceClient.from_connection_string(connection, **hooks)
        self.service.create_table_if_not_exists(table_name)
        self.table = self.service.get_table_client(table_name)
        self.service.create_table_if_not_exists(f"{table_name}Index")
        self.index = self.service.get_table_client(f"{table_name}Index")
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="floor-index")
        self.queue = QueueClient.from_connection_string(
            connection, queue_name, message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(), **hooks)
        with contextlib.suppress(Exception):
            self.queue.create_queue()
        self.twilio = twilio
        self.session = requests.Session()
        if twilio is not None:
            self.session.auth = (twilio.account_sid, twilio.auth_token)

    # accept ---------------------------------------------------------------------------------------

    def accept(self, recipients: Sequence[str], body: str, *, references_now: bool = False,
               validate: bool = False) -> str:
        """List, store and queue: the least a durable accept needs (its index rows at once, then one plain insert
        and one queue put, unless ``references_now`` asks for recipient rows too); ``validate`` adds the one check
        the API cannot skip: each number valid, in E.164."""
        if validate:
            recipients = [_e164(number) for number in recipients]
        comm_id = uuid.uuid4().hex
        now = datetime.now(UTC)
        header = {
            "PartitionKey": comm_id, "RowKey": "comm", "LicenseeId": LICENSEE.hex,
            "Reference": secrets.token_hex(5).upper(), "Status": "Queued", "Sender": SENDER, "Body": body,
            "ReplyIsAllowed": False, "ReplyIsRequired": False, "RecipientCount": len(recipients),
            "RecipientRowsWritten": references_now, "SentCount": 0, "FailedCount": 0, "CreatedAt": now,
            "UpdatedAt": now,
            "Recipients0": json.dumps([[number, None, None] for number in recipients], separators=(",", ":")),
        }
        self._list(comm_id, recipients, now)
        rows = []
        if references_now:
            rows = [("create", {"PartitionKey": comm_id, "RowKey": f"r{i:05d}", "RecipientId": uuid.uuid4().hex,
                                "PhoneNumber": number, "Status": "Pending", "Attempts": 0})
                    for i, number in enumerate(recipients)]
        if not rows:  # one entity: a plain insert, no entity-group transaction
            self.table.create_entity(header, response_preference="return-no-content")
        else:  # several: transactions of at most 100, the header in the last
            operations = [*rows, ("create", header)]
            head = len(operations) % TRANSACTION_LIMIT or TRANSACTION_LIMIT
            for start in range(0, len(operations) - head, TRANSACTION_LIMIT):
                self.table.submit_transaction(operations[start:start + TRANSACTION_LIMIT])
            self.table.submit_transaction(operations[len(operations) - head:])
        self.queue.send_message(json.dumps({"CommId": comm_id}, separators=(",", ":")))
        return comm_id

    def _list(self, comm_id: str, recipients: Sequence[str], now: datetime) -> None:
        """The index rows issue 17 asks for, before the header and all at once: one for the sweep (a partition of
        open work, so it never scans the communications), one for the licensee's log by time, and the recipients'
        rows for the log's filter by number (one partition per licensee: a transaction per 100). Fewer cannot serve
        both readers without a scan; our own accept writes one row more (the day row retention reads)."""
        key = f"{10**17 - 1 - int(now.timestamp() * 1_000_000):017d}-{comm_id}"
        by_number = [("upsert", {"PartitionKey": f"p{LICENSEE.hex}", "RowKey": f"{number}-{key}", "CommId": comm_id})
                     for number in dict.fromkeys(recipients)]
        writes = [self._pool.submit(self.index.upsert_entity, {"PartitionKey": comm_id, "RowKey": "open", "DueAt": now},
                                    mode=UpdateMode.REPLACE)]
        writes += [self._pool.submit(self.index.submit_transaction, by_number[start:start + TRANSACTION_LIMIT])
                   for start in range(0, len(by_number), TRANSACTION_LIMIT)]
        self.index.upsert_entity({"PartitionKey": LICENSEE.hex, "RowKey": key, "CommId": comm_id},
                                 mode=UpdateMode.REPLACE)
        for write in writes:
            write.result()

    # deliver --------------------------------------------------------------------------------------

    def deliver(self, comm_id: str, batch_size: int = TRANSACTION_LIMIT - 1) -> int:
        """Read the partition, then per batch: claim, one provider call per recipient, record."""
        entities = list(self.table.query_entities("PartitionKey eq @pk", parameters={"pk": comm_id},
                                                  results_per_page=1000))
        header = next(entity for entity in entities if entity["RowKey"] == "comm")
        rows = {entity["RowKey"]: entity for entity in entities if entity["RowKey"] != "comm"}
        text = "".join(header[f"Recipients{n}"] for n in range(15) if f"Recipients{n}" in header)
        recipients = [item[0] for item in json.loads(text)]
        sent = 0
        for start in range(0, len(recipients), batch_size):
            batch = list(enumerate(recipients[start:start + batch_size], start))
            now = datetime.now(UTC)
            claim: list[Any] = []
            for index, number in batch:
                key = f"r{index:05d}"
                entity = {"PartitionKey": comm_id, "RowKey": key, "PhoneNumber": number, "Status": "Sending",
                          "ClaimedAt": now, "Attempts": 1}
                if key in rows:
                    claim.append(("update", entity, {"mode": UpdateMode.REPLACE, "etag": rows[key].metadata["etag"],
                                                     "match_condition": _if_not_modified()}))
                else:
                    claim.append(("create", entity))
            claim.append(("update", {"PartitionKey": comm_id, "RowKey": "comm", "Status": "Sending",
                                     "UpdatedAt": now}, {"mode": UpdateMode.MERGE}))
            self.table.submit_transaction(claim)
            sids = [self._provider_send(number, header["Sender"], header["Body"]) for _, number in batch]
            sent += len(batch)
            record: list[Any] = [
                ("upsert", {"PartitionKey": comm_id, "RowKey": f"r{index:05d}", "PhoneNumber": number,
                            "Status": "Sent", "ProviderMessageId": sid, "Attempts": 1}, {"mode": UpdateMode.REPLACE})
                for (index, number), sid in zip(batch, sids, strict=True)
            ]
            status = "Sent" if sent == len(recipients) else "Sending"
            record.append(("update", {"PartitionKey": comm_id, "RowKey": "comm", "Status": status, "SentCount": sent,
                                      "UpdatedAt": datetime.now(UTC)}, {"mode": UpdateMode.MERGE}))
            self.table.submit_transaction(record)
        self.index.delete_entity(comm_id, "open")  # final: off the index of open work (issue 17)
        return len(recipients)

    def _provider_send(self, to: str, sender: str, body: str) -> str:
        if self.twilio is None:
            return "none"
        response = self.session.post(self.twilio.messages_url, data={"To": to, "From": sender, "Body": body},
                                     timeout=10)
        response.raise_for_status()
        return response.json()["sid"]


def _e164(number: str) -> str:
    import phonenumbers

    parsed = phonenumbers.parse(number, None)
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(number)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _if_not_modified() -> Any:
    from azure.core import MatchConditions

    return MatchConditions.IfNotModified


# --------------------------------------------------------------------------------------------------
# The local Twilio fake, in a process of its own (so its request checking does not share our GIL)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TwilioEndpoint:
    base_url: str
    account_sid: str
    auth_token: str

    @property
    def messages_url(self) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def env(self) -> dict[str, str]:
        return {"SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": self.account_sid,
                "TWILIO_AUTH_TOKEN": self.auth_token, "TWILIO_BASE_URL": self.base_url}


@contextlib.contextmanager
def twilio_fake_process() -> Iterator[TwilioEndpoint]:
    """``fakes/twilio.py`` served by a child process until the block ends."""
    process = subprocess.Popen([sys.executable, "-m", "bench.fake_twilio"], cwd=ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the Twilio fake did not start")
        yield TwilioEndpoint(**json.loads(line))
    finally:
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rss_kib() -> tuple[int, int]:
    """(current RSS, peak RSS since start or the last reset) of this process, in KiB (Linux)."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True
