"""Unknown API keys cost (almost) no storage: counted over real HTTP against a real Azurite.

The real function_app is hosted in-process by devhost on a Gateway whose storage clients count
every request they send to the keys table; clients send bad keys the ways a key-spraying client would.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from azure.core.pipeline.policies import SansIOHTTPPolicy

from devhost.host import DevHost
from gateway import auth
from gateway.auth import KEY_PREFIX
from gateway.connections import StorageClients
from gateway.errors import ApiError
from gateway.runtime import Gateway, use_gateway
from gateway.settings import Settings, get_settings

HOST_JSON = {"version": "2.0", "extensions": {"http": {"routePrefix": ""}}}
NEGATIVE_CAPACITY = 100  # small, so a spray overflows it quickly


class KeyTableReads(SansIOHTTPPolicy):
    """Counts the storage requests that touch one table."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.count = 0
        self._lock = threading.Lock()

    def on_request(self, request: Any) -> None:
        if f"/{self.table}(" in request.http_request.url:
            with self._lock:
                self.count += 1

    def take(self) -> int:
        with self._lock:
            count, self.count = self.count, 0
        return count


class Site:
    def __init__(self, url: str, reads: KeyTableReads, good_key: str) -> None:
        self.url, self.reads, self.good_key = url, reads, good_key

    def statuses(self, keys: list[str]) -> list[int]:
        """One status look-up per key, eight at a time."""
        def one(key: str) -> int:
            return requests.get(f"{self.url}/api/sms/{uuid.uuid4().hex}", headers={"X-Api-Key": key},
                                timeout=30).status_code

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, keys))


@pytest.fixture
def site(storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    for name, value in {**storage_env, "SMS_API_KEY_CACHE_SECONDS": "60"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(auth, "UNKNOWN_KEYS_CACHED", NEGATIVE_CAPACITY)
    get_settings.cache_clear()
    import function_app

    settings = Settings.from_env()
    reads = KeyTableReads(settings.api_keys_table)
    gateway = Gateway.create(settings, clients=StorageClients.create(settings.storage, policies=[reads]))
    gateway.ensure_resources()
    good_key = gateway.keys.create(uuid.uuid4(), "good")[1]
    use_gateway(gateway)
    host = DevHost(function_app.app, HOST_JSON, port=0, queues=False, timers=False).start()
    try:
        yield Site(host.url, reads, good_key)
    finally:
        host.stop()
        use_gateway(None)
        get_settings.cache_clear()


def well_formed_keys(count: int) -> list[str]:
    return [KEY_PREFIX + secrets.token_urlsafe(32) for _ in range(count)]


def test_the_same_unknown_key_100_times_is_one_read(site: Site) -> None:
    [bad] = well_formed_keys(1)
    site.reads.take()
    assert site.statuses([bad] * 100) == [401] * 100
    assert site.reads.take() == 1


def test_keys_that_cannot_be_ours_are_refused_without_a_read(site: Site) -> None:
    garbage = [secrets.token_hex(16) for _ in range(500)] + [KEY_PREFIX + "x" * 42 for _ in range(500)]
    site.reads.take()
    assert site.statuses(garbage) == [401] * 1000
    assert site.reads.take() == 0


def test_a_spray_of_1000_random_keys_reads_each_once_and_good_keys_stay_cached(site: Site) -> None:
    assert site.statuses([site.good_key]) == [404]  # authenticated (an unknown CommId): now cached
    sprayed = well_formed_keys(1000)
    site.reads.take()

    assert site.statuses(sprayed) == [401] * 1000
    assert site.reads.take() == 1000  # one read per new key, never more

    assert site.statuses([site.good_key] * 10) == [404] * 10
    assert site.reads.take() == 0  # the spray, ten times the unknown-key cache, evicted no good key

    recent = sprayed[-NEGATIVE_CAPACITY // 2:]  # sent eight at a time: the last few may have finished out of order
    assert site.statuses(recent) == [401] * len(recent)
    assert site.reads.take() == 0  # the most recent unknown keys are still cached
    assert site.statuses(sprayed[:10]) == [401] * 10
    assert site.reads.take() == 10  # the oldest were evicted: the unknown-key cache is bounded


def test_a_key_created_after_a_miss_works_once_the_miss_expires(make_gateway) -> None:
    """The price of caching misses: an instance that just looked for a key refuses it for a few seconds."""
    gateway = make_gateway()
    now = [1000.0]
    authenticator = auth.Authenticator(gateway.keys, ttl_seconds=60, clock=lambda: now[0])
    [secret] = well_formed_keys(1)
    with pytest.raises(ApiError):
        authenticator.authenticate({"x-api-key": secret})
    digest = auth.hash_key(secret)
    table = gateway.clients.tables.get_table_client(gateway.settings.api_keys_table)
    table.create_entity({"PartitionKey": digest[:2], "RowKey": digest, "KeyId": digest[:12], "Name": "late",
                         "LicenseeId": uuid.uuid4().hex, "Revoked": False})
    now[0] += auth.UNKNOWN_KEY_SECONDS - 0.1
    with pytest.raises(ApiError):
        authenticator.authenticate({"x-api-key": secret})
    now[0] += 0.1
    assert authenticator.authenticate({"x-api-key": secret}).key_id == digest[:12]
