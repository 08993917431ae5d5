"""Shared fixtures: one real Azurite per test session, and isolated storage names per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devhost.azurite import Azurite, external_connection_string, isolated_env

pytest_plugins = ["tests.http_fixtures"]


@pytest.fixture(scope="session")
def storage_connection() -> Iterator[str]:
    """A connection string for a real Azurite, started for this session unless one is given."""
    given = external_connection_string()
    if given:
        yield given
        return
    server = Azurite.start()
    try:
        yield server.connection_string
    finally:
        server.stop()


@pytest.fixture
def storage_env(storage_connection: str) -> dict[str, str]:
    """App settings that point at Azurite with table and queue names no other test uses."""
    return isolated_env(storage_connection)


@pytest.fixture
def make_gateway(storage_env: dict[str, str]):
    """Build a Gateway on Azurite from settings, as the app does, with per-test overrides."""
    from gateway.runtime import Gateway
    from gateway.settings import Settings

    def build(**overrides: str) -> Gateway:
        env = {"SMS_DEFAULT_SENDER": "+15005550006", **storage_env, **overrides}
        gateway = Gateway.create(Settings.from_env(env))
        gateway.ensure_resources()
        return gateway

    return build
