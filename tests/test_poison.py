"""A message whose processing keeps failing ends in the poison queue after maxDequeueCount.

The real function_app is hosted in-process by gateway.devhost (as `func start` would host it),
with a provider that always reports a transient failure.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import pytest

from gateway.devhost import DevHost
from gateway.providers.base import OutboundSms, Outcome, SendResult
from gateway.runtime import use_gateway
from gateway.settings import get_settings
from tests.samples import send_body

HOST_JSON = {
    "version": "2.0",
    "extensions": {
        "http": {"routePrefix": ""},
        "queues": {"batchSize": 4, "maxPollingInterval": "00:00:00.200", "visibilityTimeout": "00:00:00",
                   "maxDequeueCount": 3},
    },
}


class AlwaysBusyProvider:
    name = "always-busy"
    max_batch_size = 10
    resend_is_safe = True
    resend_window_seconds = None

    def __init__(self) -> None:
        self.attempts = 0

    def send(self, messages: Sequence[OutboundSms]) -> list[SendResult]:
        self.attempts += 1
        return [SendResult(m.recipient_id, Outcome.RETRY, error_code="503", error_message="busy") for m in messages]


@pytest.fixture
def hosted(storage_env, make_gateway, monkeypatch):
    for name, value in storage_env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    import function_app

    gateway = make_gateway()
    provider = AlwaysBusyProvider()
    gateway.provider = provider
    gateway.delivery._provider = provider
    use_gateway(gateway)
    host = DevHost(function_app.app, HOST_JSON, port=0, queues=True, timers=False).start()
    yield host, gateway, provider
    host.stop()
    use_gateway(None)
    get_settings.cache_clear()


def test_a_message_that_keeps_failing_lands_in_the_poison_queue(hosted) -> None:
    host, gateway, provider = hosted
    key = gateway.keys.create(uuid.uuid4(), "poison")[1]
    import requests

    response = requests.post(f"{host.url}/api/sendmessage", json=send_body(), headers={"X-Api-Key": key}, timeout=30)
    assert response.status_code == 200, response.text
    comm_id = response.json()["CommId"]
    poison = gateway.clients.queue(gateway.settings.poison_queue_name)
    deadline = time.monotonic() + 30
    messages = []
    while time.monotonic() < deadline and not messages:
        messages = list(poison.peek_messages(max_messages=10))
        time.sleep(0.2)
    assert [m.content for m in messages] == [f'{{"CommId":"{comm_id}"}}']
    assert provider.attempts == 3
    assert gateway.clients.queue(gateway.settings.queue_name).get_queue_properties().approximate_message_count == 0
