"""A small threaded HTTP(S) server for protocol fakes: real sockets, scripted faults, a hard stop.

``stop`` closes the listening socket and every open connection, so a client that pooled a
keep-alive connection gets a refused connection next, as it would from a service that went away.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Fault:
    """What the next request meets instead of (or before) normal service.

    ``delay`` waits first; then a ``status`` answers with that status (and ``retry_after``, ``body``)
    without processing, while no status goes on to process the request normally, late.

    ``answer_after`` and ``no_answer`` let the request be processed (and recorded) normally first and
    then hold its answer back: for ``answer_after`` seconds, or (``no_answer``) until the fake stops,
    when the connection is dropped unanswered. A client that times out first does not know that the
    service did the work: how a "maybe sent" happens.
    """

    status: int | None = None
    retry_after: str | None = None
    delay: float = 0.0
    body: Any = None
    answer_after: float = 0.0
    no_answer: bool = False


class FakeHandler(BaseHTTPRequestHandler):
    """Base handler: HTTP/1.1 keep-alive, whole-body reads, JSON answers, TLS handshakes off the accept loop."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would add 40 ms to each answer
    server: FakeHttpServer
    _held_by: Fault | None = None  # a fault that holds back the answer of the request being served

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()
        self.server.track(self.request)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.request)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read what the fake recorded, not its access log."""

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def before_answer(self, status: int) -> None:
        """Called just before an answer goes out, so a fake's records are complete when the client reads it."""

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.before_answer(status)
        held, self._held_by = self._held_by, None
        if held is not None and not self._hold(held):
            self.close_connection = True  # the fake stopped while holding the answer: drop it unanswered
            return
        data = json.dumps(payload).encode("utf-8") if payload is not None else b""
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True  # the client gave up (a timeout test): nothing to tell it

    def _hold(self, fault: Fault) -> bool:
        """Wait as the fault says before answering; False when the answer must never go out."""
        if fault.no_answer:
            self.server.stopping.wait()
            return False
        return not self.server.stopping.wait(fault.answer_after)

    def apply_fault(self, fault: Fault | None, error_body: Callable[[int], Any]) -> bool:
        """Run a scripted fault; True when it answered the request, False when normal service goes on."""
        self._held_by = None
        if fault is None:
            return False
        if fault.delay and self.server.stopping.wait(fault.delay):
            self.close_connection = True
            return True
        if fault.answer_after or fault.no_answer:
            self._held_by = fault  # send_json holds whatever answer comes next, this fault's or the service's
        if fault.status is None:
            return False
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
        body = fault.body if fault.body is not None else error_body(fault.status)
        self.send_json(fault.status, body, headers)
        return True


class FakeHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, handler: type[FakeHandler], owner: Any, tls: ssl.SSLContext | None = None, port: int = 0
    ) -> None:
        super().__init__(("127.0.0.1", port), handler)
        self.owner = owner
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()


class FakeService:
    """Owns one server thread and a queue of scripted faults; subclasses define the protocol."""

    handler: type[FakeHandler]
    scheme = "http"

    def __init__(self) -> None:
        self._server: FakeHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._faults: deque[Fault] = deque()
        self.lock = threading.Lock()
        self.port = 0

    def tls_context(self) -> ssl.SSLContext | None:
        return None

    def start(self, port: int = 0) -> FakeService:
        """Listen on 127.0.0.1: on ``port``, or on a free port when it is 0 (``self.port`` says which)."""
        server = FakeHttpServer(self.handler, self, self.tls_context(), port)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop open connections: from now on clients get connection refused."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def push_fault(self, *faults: Fault) -> None:
        """Queue faults; each request takes the next one (requests beyond the queue are served normally)."""
        with self.lock:
            self._faults.extend(faults)

    def next_fault(self) -> Fault | None:
        with self.lock:
            return self._faults.popleft() if self._faults else None

    def __enter__(self) -> FakeService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
