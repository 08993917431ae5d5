"""The HTTP side of the host: a threading stdlib server that hands each request to its routed function.

Each request becomes an ``azure.functions.HttpRequest`` (route values, query and headers folded as the
worker folds them); the function's ``HttpResponse`` (or str, bytes, None) is written back, and an
exception becomes a short 500 with the traceback in the log. Every response closes its connection.

Like the Functions front end, the host protects itself from its clients: a body over the host's limit
(``devhost.body``) or with an unreadable length is refused before it is read, a client silent for
``idle_timeout`` seconds is disconnected, and the access log names the path, never the query string
(API keys and DTO fields travel there).
"""

from __future__ import annotations

import http.server
import logging
import socket
import sys
import time
import traceback
import urllib.parse
from collections.abc import Mapping
from typing import Any

import azure.functions as func

from devhost.body import MAX_REQUEST_BYTES, BodyRefused, declared_length, read_body
from devhost.functions import invoke
from devhost.routing import MethodNotAllowed, RouteNotFound, Router

logger = logging.getLogger(__name__)

IDLE_TIMEOUT_SECONDS = 30.0  # a client silent this long (before or inside a request) is disconnected
# After refusing a body, what the client may still send is read and dropped for a moment, so the
# connection ends with a FIN the client can read the answer before, not a reset that loses it.
LINGER_SECONDS = 1.0
LINGER_BYTES = 1024 * 1024


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    """Turns one HTTP request into an ``HttpRequest`` for the routed function and writes its response."""

    server: HttpServer
    protocol_version = "HTTP/1.1"  # so Expect: 100-continue works; every response still closes
    _refused = False  # a body was refused unread: finish() lets the client's rest drain before closing

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout  # StreamRequestHandler puts it on the socket: every read and write
        super().setup()

    def finish(self) -> None:
        super().finish()
        if self._refused:
            self._linger()

    def handle_expect_100(self) -> bool:
        """Refuse a body the host would not read before the client sends it, not after."""
        try:
            declared_length(self.headers, self.server.max_request_bytes)
        except BodyRefused as refused:
            self._refuse(refused)
            self._log_access(refused.status, "-", time.perf_counter())
            return False
        return super().handle_expect_100()

    def _handle(self) -> None:
        started = time.perf_counter()
        status = 500
        target = "-"
        try:
            status, target = self._dispatch()
        except (ConnectionError, TimeoutError):
            logger.info("%s %s: client went away", self.command, self._path_only())
            return
        finally:
            self.close_connection = True
        self._log_access(status, target, started)

    def _log_access(self, status: int, target: str, started: float) -> None:
        logger.info("%s %s -> %d (%s, %.1f ms)", self.command, self._path_only(), status, target,
                    (time.perf_counter() - started) * 1000)

    def _path_only(self) -> str:
        """The request's path without its query string: keys and DTO fields travel there."""
        return urllib.parse.urlsplit(self.path).path

    def _dispatch(self) -> tuple[int, str]:
        parsed = urllib.parse.urlsplit(self.path)
        method = self.command.upper()
        try:
            body = read_body(self.headers, self.rfile, self.server.max_request_bytes)
        except BodyRefused as refused:
            self._refuse(refused)
            return refused.status, "-"
        try:
            route, route_params = self.server.router.resolve(method, parsed.path)
        except RouteNotFound:
            self._send_plain(404, "Not Found")
            return 404, "-"
        except MethodNotAllowed as error:
            self._send_plain(405, "Method Not Allowed", {"Allow": ", ".join(error.allowed)})
            return 405, "-"

        query: dict[str, str] = {}
        for name, value in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True):
            query[name] = f"{query[name]},{value}" if name in query else value
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        host_header = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        request = func.HttpRequest(method, f"http://{host_header}{self.path}", headers=headers, params=query,
                                   route_params=route_params, body=body)
        name = route.spec.name
        try:
            result = invoke(route.spec, request)
        except Exception:
            logger.error("Function %s failed:\n%s", name, traceback.format_exc().rstrip())
            self._send_plain(500, "Internal Server Error: the function raised an exception (see the host log)")
            return 500, name
        if result is None:
            self._send(204, [], b"")
            return 204, name
        if isinstance(result, str | bytes):
            payload = result.encode("utf-8") if isinstance(result, str) else result
            self._send(200, [("Content-Type", "text/plain; charset=utf-8")], payload)
            return 200, name
        if not isinstance(result, func.HttpResponse):
            logger.error("Function %s returned %s, not an HttpResponse", name, type(result).__name__)
            self._send_plain(500, "Internal Server Error: the function returned no HttpResponse")
            return 500, name
        self._send(result.status_code, self._response_headers(result), result.get_body() or b"")
        return result.status_code, name

    @staticmethod
    def _response_headers(response: func.HttpResponse) -> list[tuple[str, str]]:
        """Headers as the worker encodes them: a Content-Type from mimetype/charset unless one is set."""
        headers = [(name, value) for name, value in response.headers.items()]
        if not any(name.lower() == "content-type" for name, _ in headers):
            mimetype = response.mimetype
            content_type = f"{mimetype}; charset={response.charset}" if mimetype.startswith("text/") else mimetype
            headers.append(("Content-Type", content_type))
        return headers

    def _refuse(self, refused: BodyRefused) -> None:
        reason = self.responses.get(refused.status, ("Error",))[0]
        self._send_plain(refused.status, f"{reason}: {refused}")
        self.close_connection = True
        self._refused = True

    def _linger(self) -> None:
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_SECONDS)
            deadline = time.monotonic() + LINGER_SECONDS
            drained = 0
            while drained < LINGER_BYTES and time.monotonic() < deadline:
                data = self.connection.recv(65536)
                if not data:
                    return
                drained += len(data)
        except OSError:
            pass  # the client is gone or still talking: either way the connection closes now

    def _send_plain(self, status: int, text: str, extra: Mapping[str, str] | None = None) -> None:
        headers = [("Content-Type", "text/plain; charset=utf-8"), *(extra or {}).items()]
        self._send(status, headers, text.encode("utf-8"))

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        for name, value in headers:
            if name.lower() not in {"content-length", "connection", "transfer-encoding", "date"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib's stderr access log; _handle logs one line per request instead."""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class HttpServer(http.server.ThreadingHTTPServer):
    """Serves the router's functions on ``address`` (port 0 picks a free one), a thread per request.

    ``idle_timeout`` bounds every wait for the client; ``max_request_bytes`` is the longest body read.
    """

    daemon_threads = True
    # socketserver's default listen backlog is 5: a burst of clients then meets resets and 1 s SYN retries.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], router: Router, *, idle_timeout: float = IDLE_TIMEOUT_SECONDS,
                 max_request_bytes: int = MAX_REQUEST_BYTES) -> None:
        self.router = router
        self.idle_timeout = idle_timeout
        self.max_request_bytes = max_request_bytes
        super().__init__(address, _RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed outside a request's handling: one log line, a traceback only for a bug."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            logger.info("Connection from %s ended: %s", client_address[0], type(error).__name__)
        else:
            logger.exception("Connection from %s failed", client_address[0])
