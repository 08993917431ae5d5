"""Nothing accepted is lost: the sweep finds communications the queue never heard of, or lost."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest

from devhost.azurite import connection_string, free_port
from gateway import worker
from gateway.auth import Principal
from gateway.connections import StorageClients
from gateway.delivery import ABANDONED
from gateway.models import SMSSend
from gateway.queue import DeliveryQueue, decode_message
from gateway.runtime import use_gateway
from gateway.settings import StorageSettings
from gateway.storage import CommStatus, RecipientState, utcnow
from tests.samples import NUMBERS, send_body


@pytest.fixture
def gateway(make_gateway):
    gateway = make_gateway()
    use_gateway(gateway)
    yield gateway
    use_gateway(None)


def dead_queue(name: str) -> DeliveryQueue:
    """A queue client for a storage account that does not answer."""
    clients = StorageClients.create(StorageSettings(connection_string=connection_string(*(free_port(),) * 3)))
    return DeliveryQueue(clients.queue(name))


def queued_ids(gateway) -> list[uuid.UUID]:
    client = gateway.clients.queue(gateway.settings.queue_name)
    return [decode_message(message.content).comm_id for message in client.peek_messages(max_messages=32)]


def test_a_send_whose_enqueue_failed_is_accepted_then_swept_and_delivered(gateway) -> None:
    principal = Principal("k", "tests", uuid.uuid4())
    real_queue = gateway.queue
    gateway.service._queue = dead_queue(gateway.settings.queue_name)  # the crash window: stored, never queued
    response = gateway.service.send(principal, SMSSend.model_validate(send_body(*NUMBERS[:2])), immediate=False)
    gateway.service._queue = real_queue
    assert response.Status is True and response.CommId is not None
    assert queued_ids(gateway) == []

    assert worker.sweep() == 0  # not stale yet: it may simply be waiting in a backlog
    later = utcnow() + timedelta(seconds=gateway.settings.sweep_after_seconds + 1)
    assert worker.sweep(now=later) == 1
    assert queued_ids(gateway) == [response.CommId]
    assert worker.sweep(now=later) == 0  # swept once: not queued again on the next run

    report = gateway.delivery.deliver(response.CommId)
    assert report.status is CommStatus.SENT and report.sent == 2


def test_an_interrupted_immediate_send_is_finished_by_the_sweep(gateway) -> None:
    principal = Principal("k", "tests", uuid.uuid4())

    def crash(comm_id):  # the request's worker died before delivering anything
        raise SystemExit("instance recycled")

    deliver, gateway.service._delivery.deliver = gateway.service._delivery.deliver, crash
    with pytest.raises(SystemExit):
        gateway.service.send(principal, SMSSend.model_validate(send_body()), immediate=True)
    gateway.service._delivery.deliver = deliver
    comm_id = next(iter(gateway.store.open_work.due(utcnow() + timedelta(hours=1)))).comm_id  # listed at accept
    assert worker.sweep(now=utcnow() + timedelta(hours=1)) == 1
    assert queued_ids(gateway) == [comm_id]


def test_a_communication_the_sweep_cannot_finish_ends_failed(gateway) -> None:
    principal = Principal("k", "tests", uuid.uuid4())
    comm_id = gateway.service.send(principal, SMSSend.model_validate(send_body()), immediate=False).CommId
    messages = gateway.clients.queue(gateway.settings.queue_name)
    when = utcnow()
    for _ in range(worker.SWEEP_GIVE_UP_AFTER):
        messages.clear_messages()  # a worker takes each message and dies before it changes anything
        when += timedelta(seconds=gateway.settings.sweep_after_seconds + 1)
        assert worker.sweep(now=when) == 1
    messages.clear_messages()
    when += timedelta(seconds=gateway.settings.sweep_after_seconds + 1)
    assert worker.sweep(now=when) == 0
    snapshot = gateway.store.load(comm_id)
    assert snapshot.communication.status is CommStatus.FAILED
    assert [r.status for r in snapshot.stored_recipients] == [RecipientState.FAILED]
    assert snapshot.stored_recipients[0].error_code == ABANDONED


def test_a_communication_waiting_for_a_delayed_run_is_not_swept_before_it(gateway) -> None:
    principal = Principal("k", "tests", uuid.uuid4())
    gateway.service._queue = dead_queue(gateway.settings.queue_name)  # its one message is the delayed one below
    comm_id = gateway.service.send(principal, SMSSend.model_validate(send_body()), immediate=False).CommId
    gateway.store.expect_run(comm_id, utcnow() + timedelta(minutes=5))  # e.g. a back-off, or a Retry-After
    quiet = timedelta(seconds=gateway.settings.sweep_after_seconds + 1)

    assert worker.sweep(now=utcnow() + quiet) == 0
    assert worker.sweep(now=utcnow() + timedelta(minutes=5) + quiet) == 1  # that run never came


def test_the_sweep_waits_while_the_queue_is_behind(gateway) -> None:
    """A communication changed after the oldest waiting message may have its own message behind it."""
    principal = Principal("k", "tests", uuid.uuid4())
    gateway.service.send(principal, SMSSend.model_validate(send_body()), immediate=False)  # its message waits
    time.sleep(1.1)  # queue times have whole seconds
    gateway.service._queue = dead_queue(gateway.settings.queue_name)
    lost = gateway.service.send(principal, SMSSend.model_validate(send_body()), immediate=False).CommId
    later = utcnow() + timedelta(seconds=gateway.settings.sweep_after_seconds + 1)

    worker.sweep(now=later)
    assert lost not in queued_ids(gateway)  # the queue has not reached its place yet: not taken for lost
    gateway.clients.queue(gateway.settings.queue_name).clear_messages()  # the backlog drains
    assert worker.sweep(now=later) >= 1
    assert lost in queued_ids(gateway)


def test_final_communications_are_never_swept(gateway) -> None:
    principal = Principal("k", "tests", uuid.uuid4())
    gateway.service.send(principal, SMSSend.model_validate(send_body()), immediate=True)
    assert worker.sweep(now=utcnow() + timedelta(hours=1)) == 0


def test_immediate_transient_failures_are_handed_to_the_queue(gateway) -> None:
    from gateway.providers.base import Outcome
    from tests.integration.test_delivery import ScriptedProvider

    provider = ScriptedProvider({NUMBERS[1]: [Outcome.RETRY]})
    gateway.service._delivery._provider = provider  # the immediate send delivers with the request path's parts
    principal = Principal("k", "tests", uuid.uuid4())
    response = gateway.service.send(principal, SMSSend.model_validate(send_body(*NUMBERS[:2])), immediate=True)
    assert response.Status is False
    assert response.Message == "Sent to 1 of 2 recipients; 0 failed; 1 queued for retry; GSM-7, 1 segment each"
    client = gateway.clients.queue(gateway.settings.queue_name)
    assert client.get_queue_properties().approximate_message_count == 1
    assert list(client.peek_messages()) == []  # invisible for the retry delay (30 s: the back-off beats 7 s)
    status = gateway.status.by_id(principal, response.CommId.hex)
    assert status.Status == "Sending" and status.PendingCount == 1
