"""The local host wired to the Twilio fake (a pytest plugin and a helper), for the modules that send through it.

A module asks for ``twilio`` (one fake per module) and builds its ``env`` with :func:`twilio_env`, passing what
it sets on top (a Messaging Service, an Event Grid key, webhook settings); the ``gateway``, ``server`` and ``key``
fixtures of ``tests/http_fixtures.py`` then run on that env. A module that lets the fake post status callbacks
passes ``port``: the host's URL must be known before it starts, as ``SMS_PUBLIC_BASE_URL``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.twilio import TwilioFake
from tests.server import server_env


@pytest.fixture(scope="module")
def twilio() -> Iterator[TwilioFake]:
    with TwilioFake() as fake:
        yield fake  # type: ignore[misc]


def twilio_env(storage_connection: str, twilio: TwilioFake, *, port: int | None = None,
               **overrides: str) -> dict[str, str]:
    """Settings for a host that sends through ``twilio``; with ``port``, it asks for status callbacks there."""
    public = {"SMS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"} if port is not None else {}
    return server_env(storage_connection, SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID=twilio.account_sid,
                      TWILIO_AUTH_TOKEN=twilio.auth_token, TWILIO_BASE_URL=twilio.base_url,
                      **{**public, **overrides})
