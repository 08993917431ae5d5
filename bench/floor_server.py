"""The floor over HTTP: a stdlib server that does nothing but the floor's accept (bench.http's baseline).

``POST`` any path with an SMSSend-shaped JSON body: one plain entity insert and one queue
message (bench.common.Floor.accept), answered with a CommId, on a new connection each time
(``Connection: close``), like the devhost. ``GET`` answers 200 (readiness).

    python -m bench.floor_server --connection STORAGE --port P --table T --queue Q
"""

from __future__ import annotations

import argparse
import http.server
import json
import sys

from bench.common import Floor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor_server")
    parser.add_argument("--connection", required=True, help="storage connection string")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--queue", required=True)
    args = parser.parse_args(argv)
    floor = Floor(args.connection, args.table, args.queue)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer(200, {"Status": "Healthy"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            model = json.loads(self.rfile.read(length))["SMSModel"]
            comm_id = floor.accept([to["PhoneNumber"] for to in model["To"]], model["MessageBody"])
            self._answer(200, {"CommId": comm_id, "Status": True})

        def _answer(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128  # as the devhost's

    server = Server(("127.0.0.1", args.port), Handler)
    server.serve_forever(poll_interval=0.2)  # until the parent terminates us
    return 0


if __name__ == "__main__":
    sys.exit(main())
