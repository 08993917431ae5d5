"""Shared fixtures (one real Azurite per test session, isolated storage names per test) and the test tiers.

A test's tier is the folder it lives in: ``tests/unit`` (nothing running), ``tests/integration`` (Azurite or a
local Functions host, which the fixtures start), ``tests/infra`` (the IaC tools), ``tests/browser`` (the console in
headless Chromium against a local host; skipped with the reason when Chromium cannot be had). Each test is marked
with its tier, so ``pytest -m unit`` selects it, and a unit test that asks for storage fails instead of starting
Azurite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.azurite import Azurite, external_connection_string, isolated_env

pytest_plugins = ["tests.http_fixtures", "tests.twilio_host"]

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "infra", "browser")
STORAGE_FIXTURE = "storage_connection"


def tier_of(path: Path) -> str | None:
    """The tier folder a test file lives in, or None for a file outside them."""
    parts = path.resolve().relative_to(TESTS).parts
    return parts[0] if len(parts) > 1 and parts[0] in TIERS else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = tier_of(item.path)
        if tier is None:
            raise pytest.UsageError(f"{item.nodeid}: a test lives in one of tests/{{{','.join(TIERS)}}}/")
        if tier == "unit" and STORAGE_FIXTURE in getattr(item, "fixturenames", ()):
            raise pytest.UsageError(f"{item.nodeid} needs Azurite: it belongs in tests/integration/")
        item.add_marker(tier)


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
