"""Serve fakes/twilio.py from a process of its own until stdin closes.

Prints one JSON line ``{"base_url", "account_sid", "auth_token"}`` once it listens. Used by the
benchmarks so the fake's request checking runs beside the gateway, not inside its interpreter.
"""

from __future__ import annotations

import json
import sys

from fakes.twilio import TwilioFake


def main() -> int:
    with TwilioFake() as fake:
        print(json.dumps({"base_url": fake.base_url, "account_sid": fake.account_sid,
                          "auth_token": fake.auth_token}), flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
