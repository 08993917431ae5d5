"""devhost against hostile clients, over raw sockets: absurd lengths, silence, huge bodies, bad chunks.

The host runs as users run it (``python -m devhost`` in a subprocess, the sample app of
tests/devhost_app, a one-second idle time-out); every test also reads the host's whole output,
which must never hold a traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devhost.azurite import free_port
from devhost.functions import discover_functions
from devhost.routing import Router
from devhost.server import HttpServer
from tests.devhost_app import function_app as sample

ROOT = Path(__file__).resolve().parents[2]
IDLE_TIMEOUT = 1.0
MIB = 1024 * 1024


@dataclass
class Host:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    port = free_port()
    log = tmp_path_factory.mktemp("devhost") / "output.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--app", "tests.devhost_app.function_app", "--port", str(port),
             "--no-queues", "--no-timers", "--idle-timeout", str(IDLE_TIMEOUT), "--settings",
             "tests/empty.settings.json"],
            cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=sink, stderr=subprocess.STDOUT)
    running = Host(port, process, log)
    deadline = time.monotonic() + 30
    while "Gateway listening" not in running.output():
        assert process.poll() is None and time.monotonic() < deadline, running.output()
        time.sleep(0.1)
    yield running
    process.terminate()
    process.wait(timeout=15)


def answer(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, float]:
    """Everything the host sends until it closes the connection, and how long that took."""
    sock.settimeout(timeout)
    started = time.monotonic()
    received = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        received += data
    return received, time.monotonic() - started


def head(length: str, *, path: str = "/api/items/1", extra: str = "") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n{extra}\r\n".encode("latin-1")


def assert_no_traceback(host: Host) -> None:
    time.sleep(0.2)  # the host writes its log line as it closes the connection
    assert "Traceback" not in host.output()


def test_a_content_length_of_two_to_the_63_is_413_and_a_clean_close(host: Host) -> None:
    with host.connect() as sock:
        sock.sendall(head(str(2**63)))
        received, _ = answer(sock)
    assert received.startswith(b"HTTP/1.1 413 "), received
    assert b"Connection: close" in received and b"104857600-byte limit" in received
    assert_no_traceback(host)


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", "0x10", "\u00b2", "12, 12"])
def test_an_unreadable_content_length_is_400(host: Host, length: str) -> None:
    with host.connect() as sock:
        sock.sendall(head(length))
        received, _ = answer(sock)
    assert received.startswith(b"HTTP/1.1 400 "), received
    assert_no_traceback(host)


def test_two_different_content_lengths_are_400(host: Host) -> None:
    with host.connect() as sock:
        sock.sendall(head("3", extra="Content-Length: 4\r\n") + b"abcd")
        received, _ = answer(sock)
    assert received.startswith(b"HTTP/1.1 400 "), received


def test_a_300_mib_body_is_refused_before_it_is_sent(host: Host) -> None:
    """Only the headers go out: a host that waits to read 300 MiB never answers."""
    with host.connect() as sock:
        sock.sendall(head(str(300 * MIB)))
        received, elapsed = answer(sock)
    assert received.startswith(b"HTTP/1.1 413 "), received
    assert elapsed < 2


def test_a_300_mib_body_with_expect_100_continue_gets_413_instead_of_100(host: Host) -> None:
    with host.connect() as sock:
        sock.sendall(head(str(300 * MIB), extra="Expect: 100-continue\r\n"))
        received, _ = answer(sock)
    assert received.startswith(b"HTTP/1.1 413 "), received
    assert b"100 Continue" not in received


def test_a_client_streaming_300_mib_is_cut_off_near_the_start(host: Host) -> None:
    """The client keeps writing; the host reads at most its linger allowance and closes."""
    sent = 0
    with host.connect() as sock:
        sock.sendall(head(str(300 * MIB)))
        block = b"x" * MIB
        try:
            while sent < 300 * MIB:
                sock.sendall(block)
                sent += len(block)
        except OSError:
            pass  # the host closed the connection: what we wanted
    assert sent < 32 * MIB  # socket buffers on both sides plus the 1 MiB the host drains
    assert_no_traceback(host)


def test_an_idle_client_is_disconnected_after_the_time_out(host: Host) -> None:
    with host.connect() as sock:
        received, elapsed = answer(sock, timeout=IDLE_TIMEOUT + 5)
    assert received == b""
    assert IDLE_TIMEOUT - 0.2 < elapsed < IDLE_TIMEOUT + 2


@pytest.mark.parametrize("sent", [b"POST /api/items/1 HTTP/1.1\r\nHost: x\r\n", head("10") + b"abc"])
def test_a_client_that_stops_mid_request_is_disconnected(host: Host, sent: bytes) -> None:
    with host.connect() as sock:
        sock.sendall(sent)
        received, elapsed = answer(sock, timeout=IDLE_TIMEOUT + 5)
    assert received == b""
    assert elapsed < IDLE_TIMEOUT + 2
    assert_no_traceback(host)


@pytest.mark.parametrize(("chunk_size", "status"), [(b"10000000000", b"413"), (b"-5", b"400"), (b"zz", b"400")])
def test_a_chunk_over_the_limit_or_unreadable_is_refused_unread(host: Host, chunk_size: bytes, status: bytes) -> None:
    with host.connect() as sock:
        sock.sendall(b"POST /api/items/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + chunk_size + b"\r\nabc")
        received, _ = answer(sock)
    assert received.startswith(b"HTTP/1.1 " + status + b" "), received
    assert_no_traceback(host)


def test_an_unknown_transfer_coding_is_501(host: Host) -> None:
    with host.connect() as sock:
        sock.sendall(b"POST /api/items/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
        received, _ = answer(sock)
    assert received.startswith(b"HTTP/1.1 501 "), received


def test_a_chunked_body_is_counted_as_it_arrives_and_refused_at_the_limit() -> None:
    """The same server with a 1 MiB limit: a chunked body stops being read once past it."""
    router = Router.for_functions([spec for spec in discover_functions(sample.app) if spec.name == "item"], "")
    server = HttpServer(("127.0.0.1", 0), router, idle_timeout=IDLE_TIMEOUT, max_request_bytes=MIB)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        chunk = b"%x\r\n" % (64 * 1024) + b"x" * (64 * 1024) + b"\r\n"
        with socket.create_connection(server.server_address[:2], timeout=10) as sock:
            sock.sendall(b"POST /api/items/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + chunk * 16 + b"0\r\n\r\n")  # exactly 1 MiB: accepted
            received, _ = answer(sock)
        assert received.startswith(b"HTTP/1.1 201 ")
        with socket.create_connection(server.server_address[:2], timeout=10) as sock:
            sock.sendall(b"POST /api/items/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + chunk * 17)
            received, _ = answer(sock)
        assert received.startswith(b"HTTP/1.1 413 ")
    finally:
        server.shutdown()
        server.server_close()

