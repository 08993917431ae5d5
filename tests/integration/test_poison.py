"""Nothing stays open forever: a message that keeps failing reaches the poison queue, and the
poison function ends its communication as Failed.

The real function_app is hosted in-process by devhost (as `func start` would host it),
with providers that fail in the two ways that matter: transiently, and by raising.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest
import requests

from devhost.host import DevHost
from gateway.delivery import ABANDONED
from gateway.providers.base import OutboundSms, Outcome, SendResult
from gateway.runtime import use_gateway
from gateway.settings import get_settings
from gateway.storage import CommStatus, RecipientState, Snapshot
from tests.samples import NUMBERS, send_body
from tests.waiting import wait_until

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

    def __init__(self, *, crash: bool = False) -> None:
        self.attempts = 0
        self.crash = crash

    def send(self, messages: Sequence[OutboundSms], deadline: float | None = None) -> list[SendResult]:
        self.attempts += 1
        if self.crash:
            raise RuntimeError("provider bug")
        return [SendResult(m.recipient_id, Outcome.RETRY, error_code="503", error_message="busy") for m in messages]


@pytest.fixture
def host(storage_env, make_gateway, monkeypatch):
    for name, value in storage_env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    import function_app

    def start(provider: AlwaysBusyProvider):
        # A claim left by a raising provider expires after a second here (330 s by default).
        gateway = make_gateway(SMS_MAX_DELIVERY_ATTEMPTS="3", SMS_RETRY_BASE_SECONDS="0", SMS_CLAIM_TIMEOUT_SECONDS="1")
        gateway.provider = provider
        gateway.delivery._provider = provider
        use_gateway(gateway)
        started.append(DevHost(function_app.app, HOST_JSON, port=0, queues=True, timers=False).start())
        return started[-1], gateway

    started: list[DevHost] = []
    yield start
    for running in started:
        running.stop()
    use_gateway(None)
    get_settings.cache_clear()


def wait_until_final(gateway, comm_id: uuid.UUID, timeout: float = 30) -> Snapshot:
    """The communication's snapshot once its status is final."""
    return wait_until(lambda: (s := gateway.store.load(comm_id)).communication.status.is_final and s,
                      timeout=timeout, what=f"comm {comm_id.hex} to end")


@pytest.mark.parametrize("crash", [False, True], ids=["transient-forever", "raises-forever"])
def test_a_message_that_keeps_failing_ends_failed_through_the_poison_queue(host, crash: bool) -> None:
    provider = AlwaysBusyProvider(crash=crash)
    devhost, gateway = host(provider)
    key = gateway.keys.create(uuid.uuid4(), "poison")[1]
    response = requests.post(f"{devhost.url}/api/sendmessage", json=send_body(*NUMBERS[:2]),
                             headers={"X-Api-Key": key}, timeout=30)
    assert response.status_code == 200, response.text
    comm_id = uuid.UUID(response.json()["CommId"])

    snapshot = wait_until_final(gateway, comm_id)
    assert snapshot.communication.status is CommStatus.FAILED
    assert snapshot.communication.last_error.startswith(ABANDONED)
    assert [r.status for r in snapshot.stored_recipients] == [RecipientState.FAILED] * 2
    assert {r.error_code for r in snapshot.stored_recipients} == {ABANDONED}
    if not crash:
        assert "last error 503: busy" in snapshot.stored_recipients[0].error_message
    if crash:  # a raise leaves claims: each later run waits for them to expire, then resends (safe here)
        assert 1 <= provider.attempts <= 3
    else:
        assert provider.attempts == 3  # SMS_MAX_DELIVERY_ATTEMPTS
    # The host deletes the poison message once the abandon function has returned: a moment after the state is final.
    for name in (gateway.settings.queue_name, gateway.settings.poison_queue_name):
        queue = gateway.clients.queue(name)
        wait_until(lambda q=queue: q.get_queue_properties().approximate_message_count == 0, timeout=10,
                   what=f"{name} empty")


def test_an_unexpected_error_is_a_500_with_a_correlation_id_and_no_internals(host, caplog) -> None:
    devhost, gateway = host(AlwaysBusyProvider())

    def broken(*args, **kwargs):
        raise KeyError("secret internal detail")

    gateway.service.send = broken
    key = gateway.keys.create(uuid.uuid4(), "bug")[1]
    for accept, parse in (("application/json", lambda r: r.json()), ("application/jsv", None)):
        response = requests.post(f"{devhost.url}/api/sendmessage", json=send_body(),
                                 headers={"X-Api-Key": key, "Accept": accept}, timeout=30)
        assert response.status_code == 500
        assert "secret internal detail" not in response.text
        if parse:
            status = parse(response)["ResponseStatus"]
            assert status["ErrorCode"] == "InternalServerError"
            correlation_id = status["Meta"]["CorrelationId"]
            assert any(correlation_id in record.getMessage() for record in caplog.records)
        else:
            assert response.text.startswith("{ResponseStatus:{ErrorCode:InternalServerError")
