"""A licensee's webhook receiver for tests: a real HTTP server that verifies EVERY request it gets with the
Standard Webhooks reference library (``standardwebhooks``), as a licensee's own code would.

Each endpoint is a path with the secrets its owner knows; a request that none of them verifies is recorded in
``unverified`` and answered 401 (the ``receiver`` fixture fails a test that leaves one). Answers are scripted per
path: a status, a delay (to make the gateway time out) or a redirect; unscripted, 204.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Received:
    """One verified request: where it came, its headers (lower-case names) and its parsed body."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    verified_by: tuple[str, ...]  # the endpoint's secrets that verify it

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass(frozen=True)
class Answer:
    status: int = 204
    delay_seconds: float = 0
    location: str | None = None  # a redirect's Location
    trickle_seconds: float = 0  # after the headers, a body a byte at a time for this long (no Content-Length)


class WebhookReceiver:
    def __init__(self) -> None:
        self.secrets: dict[str, list[str]] = {}
        self.scripts: dict[str, deque[Answer]] = {}
        self.received: list[Received] = []
        self.unverified: list[tuple[str, str]] = []  # (path, why)
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer = owner._take(self.path, body, {k.lower(): v for k, v in self.headers.items()})
                if answer.delay_seconds:
                    time.sleep(answer.delay_seconds)
                self.send_response(answer.status)
                if answer.location:
                    self.send_header("Location", answer.location)
                if not answer.trickle_seconds:
                    self.send_header("Content-Length", "0")
                self.end_headers()
                deadline = time.monotonic() + answer.trickle_seconds
                try:
                    while time.monotonic() < deadline:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.05)
                except OSError:
                    pass  # the gateway hung up: it does not read answers
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def endpoint(self, path: str, *secrets: str) -> str:
        """The URL of a new endpoint at ``path`` whose owner knows ``secrets`` (add them later with ``trust``)."""
        with self.lock:
            self.secrets[path] = list(secrets)
            self.scripts[path] = deque()
        return self.base_url + path

    def trust(self, path: str, *secrets: str) -> None:
        with self.lock:
            self.secrets[path] = list(secrets)

    def script(self, path: str, *answers: Answer) -> None:
        with self.lock:
            self.scripts[path].extend(answers)

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [each for each in self.received if each.path == path]

    def _take(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        with self.lock:
            secrets = self.secrets.get(path)
            if secrets is None:
                self.unverified.append((path, "no such endpoint"))
                return Answer(404)
            verified = []
            for secret in secrets:
                try:
                    Webhook(secret).verify(body, headers)
                    verified.append(secret)
                except WebhookVerificationError as error:
                    why = str(error)
            if not verified:
                self.unverified.append((path, why if secrets else "no secret"))
                return Answer(401)
            self.received.append(Received(path, headers, json.loads(body), tuple(verified)))
            script = self.scripts[path]
            return script.popleft() if script else Answer()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
