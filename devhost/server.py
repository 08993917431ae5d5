"""The HTTP side of the host: a threading stdlib server that hands each request to its routed function.

Each request becomes an ``azure.functions.HttpRequest`` (route values, query and headers folded as the
worker folds them); the function's ``HttpResponse`` (or str, bytes, None) is written back, and an
exception becomes a short 500 with the traceback in the log. Every response closes its connection.
"""

from __future__ import annotations

import http.server
import logging
import time
import traceback
import urllib.parse
from collections.abc import Mapping
from typing import Any

import azure.functions as func

from devhost.functions import invoke
from devhost.routing import MethodNotAllowed, RouteNotFound, Router

logger = logging.getLogger(__name__)


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    """Turns one HTTP request into an ``HttpRequest`` for the routed function and writes its response."""

    server: HttpServer
    protocol_version = "HTTP/1.1"  # so Expect: 100-continue works; every response still closes

    def _handle(self) -> None:
        started = time.perf_counter()
        status = 500
        target = "-"
        try:
            status, target = self._dispatch()
        except (ConnectionError, TimeoutError):
            logger.info("%s %s: client went away", self.command, self.path)
            return
        finally:
            self.close_connection = True
        logger.info("%s %s -> %d (%s, %.1f ms)", self.command, self.path, status, target,
                    (time.perf_counter() - started) * 1000)

    def _dispatch(self) -> tuple[int, str]:
        parsed = urllib.parse.urlsplit(self.path)
        method = self.command.upper()
        try:
            body = self._read_body()
        except ValueError as error:
            self._send_plain(400, f"Bad Request: {error}")
            return 400, "-"
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

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537).split(b";", 1)[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError:
                    raise ValueError("malformed chunked body") from None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
        length_text = self.headers.get("Content-Length")
        if not length_text:
            return b""
        if not length_text.strip().isdigit():
            raise ValueError("bad Content-Length")
        return self.rfile.read(int(length_text))

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
    """Serves the router's functions on ``address`` (port 0 picks a free one), a thread per request."""

    daemon_threads = True
    # socketserver's default listen backlog is 5: a burst of clients then meets resets and 1 s SYN retries.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], router: Router) -> None:
        self.router = router
        super().__init__(address, _RequestHandler)
