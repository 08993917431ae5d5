"""What ``python -m fakes.twilio`` and ``python -m fakes.acs`` share: run a fake from a shell.

The fake listens on 127.0.0.1 until Ctrl-C (or SIGTERM), after printing the environment that points the
gateway at it and a ``curl`` that sends an SMS through the gateway; it prints a line for each SMS it gets.
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

GATEWAY = "http://127.0.0.1:7071"


def say(text: str) -> None:
    print(text, flush=True)


def stamp() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S")


def banner(title: str, env: Mapping[str, str], to: str) -> str:
    """The lines a person needs: the gateway's environment, then the curls to send and to look up."""
    assignments = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())
    payload = f'{{"SMSModel":{{"To":[{{"PhoneNumber":"{to}"}}],"MessageBody":"Hello through the fake"}}}}'
    return f"""{title} (Ctrl-C to stop)

Start the gateway against it, from the repository root in another shell:

  {assignments} bash scripts/run.sh

Send an SMS through the gateway (KEY is the development key scripts/run.sh prints):

  curl -s -X POST {GATEWAY}/api/sendmessage/immediate -H "Authorization: Bearer $KEY" \\
    -H "Content-Type: application/json" -d '{payload}'

See it accepted with the provider's id:

  curl -s -H "Authorization: Bearer $KEY" {GATEWAY}/api/sms/<CommId from the answer above>

The same variables one per line, to export (the environment wins over local.settings.json):

""" + "\n".join(f"  {name}={shlex.quote(value)}" for name, value in env.items()) + "\n"


def serve(fake: Any, port: int, describe: Any) -> int:
    """Start ``fake`` on ``port``, print ``describe(fake)``, and serve until interrupted."""
    try:
        fake.start(port)
    except OSError as error:
        print(f"cannot listen on 127.0.0.1:{port}: {error}", file=sys.stderr)
        return 1
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a shell may start a background job ignoring it
        signal.signal(signum, _interrupt)
    try:
        say(describe(fake))
        threading.Event().wait()
    except KeyboardInterrupt:
        say("stopping")
    finally:
        fake.stop()
        cleanup = getattr(fake, "cleanup", None)
        if cleanup is not None:
            cleanup()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
