"""The signing secret's form and the endpoint cache in front of storage (the table itself: tests/integration)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gateway.settings import ConfigError, Settings
from gateway.webhook_endpoints import SECRET_PREFIX, CachedEndpoints, new_secret
from gateway.webhook_events import Endpoint

LICENSEE = uuid.UUID("8b7e1f0c-3a2d-4c5b-9e8f-7a6b5c4d3e2f")
OTHER = uuid.UUID("1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f")


def test_a_secret_is_standard_webhooks_whsec_and_base64_of_random_bytes() -> None:
    made = {new_secret() for _ in range(50)}
    assert len(made) == 50
    for secret in made:
        assert secret.startswith(SECRET_PREFIX)
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        assert 24 <= len(key) <= 64
    # what a receiver computes with it (Standard Webhooks: HMAC-SHA256 over "id.timestamp.body", base64)
    secret = made.pop()
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signature = base64.b64encode(hmac.new(key, b"evt_1.1700000000.{}", hashlib.sha256).digest()).decode()
    assert len(base64.b64decode(signature)) == 32


class Directory:
    """An in-memory EndpointDirectory counting its look-ups."""

    def __init__(self) -> None:
        self.endpoints: dict[uuid.UUID, Endpoint] = {}
        self.asked: list[uuid.UUID] = []

    def find(self, licensee_id: uuid.UUID) -> Endpoint | None:
        self.asked.append(licensee_id)
        return self.endpoints.get(licensee_id)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_asks_once_per_licensee_per_ttl_and_remembers_none_too() -> None:
    directory, clock = Directory(), Clock()
    endpoint = Endpoint(LICENSEE, "https://hooks.example.com/sms", new_secret())
    directory.endpoints[LICENSEE] = endpoint
    cached = CachedEndpoints(directory, clock=clock)  # a minute by default

    for _ in range(5):
        assert cached.find(LICENSEE) == endpoint
        assert cached.find(OTHER) is None
    assert directory.asked == [LICENSEE, OTHER]

    directory.endpoints[OTHER] = Endpoint(OTHER, "https://other.example.com/", new_secret())
    del directory.endpoints[LICENSEE]
    clock.now += 59.9
    assert cached.find(LICENSEE) == endpoint and cached.find(OTHER) is None  # within the time to live
    clock.now += 0.1
    assert cached.find(LICENSEE) is None and cached.find(OTHER) == directory.endpoints[OTHER]
    assert directory.asked == [LICENSEE, OTHER, LICENSEE, OTHER]


def test_forget_makes_the_next_find_ask_again() -> None:
    directory, clock = Directory(), Clock()
    cached = CachedEndpoints(directory, 60, clock=clock)
    assert cached.find(LICENSEE) is None
    directory.endpoints[LICENSEE] = Endpoint(LICENSEE, "https://hooks.example.com/sms", new_secret())
    cached.forget(LICENSEE)
    assert cached.find(LICENSEE) == directory.endpoints[LICENSEE]
    assert directory.asked == [LICENSEE, LICENSEE]


def test_a_cached_previous_secret_is_left_out_once_its_grace_has_ended() -> None:
    directory, utc_now = Directory(), [datetime(2026, 11, 30, 9, 0, tzinfo=UTC)]
    rotated = Endpoint(LICENSEE, "https://hooks.example.com/sms", new_secret(), previous_secret=new_secret(),
                       previous_until=utc_now[0] + timedelta(seconds=30))
    directory.endpoints[LICENSEE] = rotated
    cached = CachedEndpoints(directory, 60, clock=Clock(), utc=lambda: utc_now[0])
    assert cached.find(LICENSEE) == rotated
    utc_now[0] += timedelta(seconds=30)
    assert cached.find(LICENSEE) == Endpoint(LICENSEE, rotated.url, rotated.secret)
    assert directory.asked == [LICENSEE]


def test_a_zero_ttl_caches_nothing() -> None:
    directory = Directory()
    cached = CachedEndpoints(directory, 0, clock=Clock())
    cached.find(LICENSEE)
    cached.find(LICENSEE)
    assert directory.asked == [LICENSEE, LICENSEE]


@pytest.mark.parametrize(("env", "need_https"), [
    ({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}, False),
    ({"AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
                             "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"}, False),
    ({"AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=stsmsprod;AccountKey=a2V5;"
                             "EndpointSuffix=core.windows.net"}, True),  # an operator's CLI against production
    ({"AzureWebJobsStorage__accountName": "stsmsprod"}, True),
    ({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "WEBSITE_INSTANCE_ID": "abc123",
      "SMS_ALLOW_OUTBOX_IN_AZURE": "true"}, True),
])
def test_webhook_urls_must_be_https_except_on_a_local_emulator(env: dict[str, str], need_https: bool) -> None:
    settings = Settings.from_env(env)
    assert settings.webhooks_need_https is need_https
    assert settings.webhook_allow_private is False
    assert settings.webhooks_table == "SmsWebhooks"


def test_private_addresses_are_allowed_only_when_the_setting_says_so() -> None:
    env = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    assert Settings.from_env({**env, "SMS_WEBHOOK_ALLOW_PRIVATE": "true"}).webhook_allow_private is True
    with pytest.raises(ConfigError, match="SMS_WEBHOOK_ALLOW_PRIVATE"):
        Settings.from_env({**env, "SMS_WEBHOOK_ALLOW_PRIVATE": "sometimes"})
