"""``python -m devhost``: load local.settings.json, import the app, host it until SIGINT or SIGTERM.

A problem the user must fix (a missing app module, a bad setting, an unusable host.json or binding)
is one line on stderr and exit status 1, not a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import devhost
from devhost.config import load_local_settings
from devhost.errors import DevHostError
from devhost.host import DevHost
from devhost.server import IDLE_TIMEOUT_SECONDS

logger = logging.getLogger("devhost")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=(devhost.__doc__ or "").split("\n\n")[0])
    parser.add_argument("--app", default="function_app", help="module defining the FunctionApp (default function_app)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None,
                        help="HTTP port (default: Host.LocalHttpPort from the settings file, else 7071)")
    parser.add_argument("--no-queues", action="store_true", help="do not poll queues (no storage needed)")
    parser.add_argument("--no-timers", action="store_true", help="do not run timer triggers")
    parser.add_argument("--settings", default=None,
                        help="local.settings.json to load into the environment (default ./local.settings.json)")
    parser.add_argument("--max-polling-interval", type=float, default=None, metavar="SECONDS",
                        help="override host.json extensions.queues.maxPollingInterval")
    parser.add_argument("--idle-timeout", type=float, default=IDLE_TIMEOUT_SECONDS, metavar="SECONDS",
                        help=f"disconnect an HTTP client silent this long (default {IDLE_TIMEOUT_SECONDS:g})")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="the host's and the app's log level (default INFO; the storage SDK and urllib3 "
                             "stay at WARNING and INFO)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: load settings, import the app, host it until SIGINT/SIGTERM."""
    args = _parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every storage request (each poll) at INFO
    logging.getLogger("urllib3").setLevel(logging.INFO)  # its DEBUG lines carry URLs, query strings included
    try:
        settings = load_local_settings(Path(args.settings or "local.settings.json"), required=args.settings is not None)
        port = args.port
        if port is None:
            port = int((settings.get("Host") or {}).get("LocalHttpPort") or 7071)
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        host = DevHost(args.app, host=args.host, port=port, queues=not args.no_queues, timers=not args.no_timers,
                       max_polling_interval=args.max_polling_interval, idle_timeout=args.idle_timeout)
        stopping = threading.Event()

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            logger.info("Received %s; shutting down", signal.Signals(signum).name)
            stopping.set()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        host.start()
    except ModuleNotFoundError as error:
        if error.name != args.app:
            raise
        print(f"error: no module {args.app!r} in {os.getcwd()} (use --app)", file=sys.stderr)
        return 1
    except (DevHostError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Gateway listening on {host.url}")
    print("Functions:")
    for line in host.describe():
        print(f"    {line}")
    sys.stdout.flush()
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        host.stop()
    print("Gateway stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
