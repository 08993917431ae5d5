"""Fan-out over Azurite: a communication larger than one batch is delivered as units, in any order, in parallel.

Every recipient is sent once whatever is redelivered or killed, and the communication's counts and final status
come out right when units finish out of order or record at the same moment.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

import pytest

from gateway.delivery import Delivery, DeliveryInProgress
from gateway.providers.base import OutboundSms, Outcome, SendResult
from gateway.storage import CommStatus, RecipientCounts, RecipientState, utcnow
from tests.integration.test_delivery import ScriptedProvider, make_delivery, stored


@pytest.fixture
def store(make_gateway):
    return make_gateway().store


def units_of(delivery: Delivery, comm_id: uuid.UUID) -> list[range]:
    """What the whole communication's queue message fans out into."""
    queued: list[range] = []
    delivery.deliver(comm_id, fan_out=lambda units, delays: queued.extend(units))
    return queued


def header(store, comm_id: uuid.UUID):
    return store.load(comm_id).communication


def test_a_large_communication_fans_out_into_batch_sized_units(store) -> None:
    comm = stored(store, 250)
    provider = ScriptedProvider()

    units = units_of(make_delivery(store, provider), comm.comm_id)

    assert units == [range(0, 99), range(99, 198), range(198, 250)]
    assert provider.sent == [] and header(store, comm.comm_id).status is CommStatus.QUEUED


def test_units_finishing_out_of_order_leave_every_recipient_sent_once_and_the_counts_right(store) -> None:
    comm = stored(store, 250)
    provider = ScriptedProvider({comm.recipients_spec[10].phone_number: [Outcome.FAILED]})
    delivery = make_delivery(store, provider)
    units = units_of(delivery, comm.comm_id)

    for unit in reversed(units):
        delivery.deliver(comm.comm_id, unit)
        if unit is not units[0]:
            assert not header(store, comm.comm_id).status.is_final  # never final before the last unit
    for unit in units:  # every unit message redelivered
        delivery.deliver(comm.comm_id, unit)

    final = header(store, comm.comm_id)
    assert len(provider.sent) == 250 and len(set(provider.numbers())) == 250
    assert (final.status, final.sent_count, final.failed_count) == (CommStatus.PARTIALLY_SENT, 249, 1)


class SlowProvider(ScriptedProvider):
    """Answers after a pause, so units running in threads record at about the same moment."""

    def send(self, messages: Sequence[OutboundSms], deadline: float | None = None) -> list[SendResult]:
        time.sleep(0.2)
        with LOCK:
            return super().send(messages, deadline)


LOCK = threading.Lock()


def test_units_recording_at_the_same_moment_lose_no_count(store) -> None:
    comm = stored(store, 500)
    provider = SlowProvider()
    delivery = make_delivery(store, provider)
    units = units_of(delivery, comm.comm_id)
    errors: list[BaseException] = []

    def run(unit: range) -> None:
        try:
            make_delivery(store, provider).deliver(comm.comm_id, unit)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(unit,)) for unit in units]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    final = header(store, comm.comm_id)
    assert len(provider.sent) == 500 and len(set(provider.numbers())) == 500
    assert (final.status, final.sent_count, final.failed_count) == (CommStatus.SENT, 500, 0)


class ReconcilingProvider(ScriptedProvider):
    """Twilio-like: resends are not safe, but it can say which messages it already has."""

    def find_sent(self, messages: Sequence[OutboundSms]) -> dict[uuid.UUID, str]:
        have = {message.recipient_id for message in self.sent}
        return {message.recipient_id: "p-found" for message in messages if message.recipient_id in have}


def test_a_unit_killed_mid_batch_is_finished_by_its_redelivery_and_nobody_is_sent_twice(store) -> None:
    comm = stored(store, 250)
    provider = ReconcilingProvider()
    units = units_of(make_delivery(store, provider), comm.comm_id)

    make_delivery(store, provider).deliver(comm.comm_id, units[0])
    provider.crash_after = len(provider.sent) + 40  # the process dies 40 calls into the second unit
    with pytest.raises(SystemExit):
        make_delivery(store, provider).deliver(comm.comm_id, units[1])
    provider.crash_after = None
    make_delivery(store, provider).deliver(comm.comm_id, units[2])
    with pytest.raises(DeliveryInProgress):  # its claim is live: the redelivered unit steps back
        make_delivery(store, provider).deliver(comm.comm_id, units[1])
    assert header(store, comm.comm_id).status is CommStatus.SENDING

    later = make_delivery(store, provider, clock=lambda: utcnow() + timedelta(minutes=3))
    later.deliver(comm.comm_id, units[1])  # past the claim and Twilio's settle time: reconciled, the rest sent

    final = header(store, comm.comm_id)
    assert len(provider.sent) == 250 and len(set(provider.numbers())) == 250
    assert (final.status, final.sent_count, final.failed_count) == (CommStatus.SENT, 250, 0)


def test_a_unit_given_up_fails_only_its_own_recipients(store) -> None:
    comm = stored(store, 250)
    provider = ScriptedProvider()
    delivery = make_delivery(store, provider)
    units = units_of(delivery, comm.comm_id)

    delivery.give_up(comm.comm_id, "Delivery abandoned after 5 attempts", units[1])
    for unit in (units[0], units[2]):
        delivery.deliver(comm.comm_id, unit)

    snapshot = store.load(comm.comm_id)
    failed = [r.index for r in snapshot.stored_recipients if r.status is RecipientState.FAILED]
    assert failed == list(units[1])
    final = snapshot.communication
    assert (final.status, final.sent_count, final.failed_count) == (CommStatus.PARTIALLY_SENT, 151, 99)


def test_a_fan_out_with_nothing_open_puts_stale_counts_right(store) -> None:
    comm = stored(store, 150)
    delivery = make_delivery(store, ScriptedProvider())
    for unit in units_of(delivery, comm.comm_id):
        delivery.deliver(comm.comm_id, unit)
    tally = store.tally(comm.comm_id)  # as if the last unit died before settling:
    store.save_counts(comm.comm_id, replace(tally, rows=RecipientCounts(99, 0, 51)), CommStatus.SENDING, utcnow())

    assert units_of(delivery, comm.comm_id) == []  # the sweep's whole-communication message

    final = header(store, comm.comm_id)
    assert (final.status, final.sent_count) == (CommStatus.SENT, 150)
