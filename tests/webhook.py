"""A webhook endpoint for tests of what the fakes post: it records every POST and answers as scripted."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fakes.eventgrid import VALIDATION_EVENT


@dataclass(frozen=True)
class Post:
    headers: dict[str, str]
    events: list[dict[str, Any]]


class Webhook:
    """Records every POST; answers the handshake by echoing its code unless told otherwise, then ``statuses``."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.statuses: deque[int] = deque()
        self.handshake: tuple[int, Any] | None = None  # (status, body) instead of echoing the code
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                events = json.loads(body)
                with owner.lock:
                    owner.posts.append(Post({k.lower(): v for k, v in self.headers.items()}, events))
                    if events and events[0]["eventType"] == VALIDATION_EVENT:
                        status, answer = owner.handshake or (
                            200, {"validationResponse": events[0]["data"]["validationCode"]})
                    else:
                        status, answer = (owner.statuses.popleft() if owner.statuses else 200), {}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/providers/acs/events?key=k"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def notifications(self) -> list[Post]:
        with self.lock:
            return [post for post in self.posts if post.headers["aeg-event-type"] == "Notification"]

    def __enter__(self) -> Webhook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
