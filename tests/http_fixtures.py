"""HTTP fixtures shared by the test modules that talk to a running gateway (a pytest plugin).

Each module gets its own gateway subprocess on its own tables and queue (module scope).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devhost.azurite import free_port
from gateway.runtime import Gateway
from gateway.settings import Settings
from tests.server import GatewayServer, server_env

LICENSEE = uuid.UUID("0d6f4a8e-5c1b-4e57-9a43-1f7d2b3c4e5f")


@pytest.fixture(scope="module")
def env(storage_connection: str) -> dict[str, str]:
    return server_env(storage_connection)


@pytest.fixture(scope="module")
def gateway(env: dict[str, str]) -> Gateway:
    gateway = Gateway.create(Settings.from_env(env))
    gateway.ensure_resources()
    return gateway


@pytest.fixture(scope="module")
def port() -> int:
    """The local host's port, known before it starts (a module whose env names its URL asks for it too)."""
    return free_port()


@pytest.fixture(scope="module")
def server(env: dict[str, str], gateway: Gateway, port: int) -> Iterator[GatewayServer]:
    """The gateway with its queue worker running, as scripts/run.sh runs it."""
    server = GatewayServer.start(env, port=port)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def quiet_server(storage_connection: str) -> Iterator[tuple[GatewayServer, Gateway]]:
    """The gateway without queue workers, so tests can see what a request leaves behind."""
    env = server_env(storage_connection)
    gateway = Gateway.create(Settings.from_env(env))
    gateway.ensure_resources()
    server = GatewayServer.start(env, "--no-queues")
    yield server, gateway
    server.stop()


@pytest.fixture(scope="module")
def key(gateway: Gateway) -> str:
    return gateway.keys.create(LICENSEE, "tests")[1]
