"""The open-work index (``gateway/open_work.py``): its write order keeps every piece of open work findable by the
sweep, and a row left without its work costs one look and is dropped."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

import pytest

from gateway import worker
from gateway.delivery import RetryLater
from gateway.open_work import COMM_ROW
from gateway.providers.base import Outcome
from gateway.receipts import Receipt, ReceiptBook, ReceiptOutcome, ReceiptState
from gateway.runtime import Gateway, use_gateway
from gateway.storage import CommStatus, utcnow
from tests.integration.test_delivery import ScriptedProvider, make_delivery
from tests.integration.test_storage import make_comm
from tests.integration.test_webhook_emit import Killed, RecordingSink


@pytest.fixture
def gateway(make_gateway) -> Gateway:
    gateway = make_gateway()
    use_gateway(gateway)
    yield gateway
    use_gateway(None)


@pytest.fixture
def sink(gateway: Gateway) -> RecordingSink:
    return RecordingSink(gateway.clients.worker_tables, f"{gateway.settings.communications_table}Events")


def rows(gateway: Gateway) -> list[tuple[str, str]]:
    """Every open-work row: (PartitionKey, RowKey)."""
    table = gateway.clients.worker_tables.get_table_client(gateway.settings.open_work_table)
    return sorted((row["PartitionKey"], row["RowKey"]) for row in table.list_entities())


def later(gateway: Gateway, extra: timedelta = timedelta(0)):
    return utcnow() + timedelta(seconds=gateway.settings.sweep_after_seconds + 1) + extra


def sweep_with(gateway: Gateway, sink: RecordingSink | None, now) -> worker.SweepReport:
    use_gateway(dataclasses.replace(gateway, events=sink))
    try:
        return worker.run_sweep(now=now)
    finally:
        use_gateway(gateway)


def test_an_accepted_communication_is_listed_before_its_header_and_taken_off_once_final(gateway: Gateway) -> None:
    comm = make_comm(2, reference=uuid.uuid4().hex[:10].upper())
    calls: list[str] = []
    open_work = gateway.store.open_work
    original_open, original_create = open_work.open, gateway.store._table.create_entity
    open_work.open = lambda *a, **k: (calls.append("open-work row"), original_open(*a, **k))[1]
    gateway.store._table.create_entity = lambda *a, **k: (calls.append("header"), original_create(*a, **k))[1]
    gateway.store.create(comm)
    assert calls == ["open-work row", "header"]
    assert rows(gateway) == [(comm.comm_id.hex, COMM_ROW)]
    assert gateway.delivery.deliver(comm.comm_id).status is CommStatus.SENT
    assert rows(gateway) == []  # the final record took it off: nothing left for the sweep


def test_a_row_whose_accept_failed_is_dropped_by_one_sweep(gateway: Gateway) -> None:
    orphan = uuid.uuid4()
    gateway.store.open_work.open(orphan, utcnow())  # the header's write failed after it
    assert worker.run_sweep(now=utcnow()).dropped == 0  # not due before a quiet time: the accept may be under way
    report = worker.run_sweep(now=later(gateway))
    assert (report.dropped, report.queued) == (1, 0)
    assert rows(gateway) == []


def test_a_row_left_by_a_final_communication_is_dropped_and_a_scheduled_one_waits(gateway: Gateway) -> None:
    final = make_comm(1, reference="FINALROW01")
    final.status, final.sent_count = CommStatus.SENT, 1
    gateway.store.open_work.open(final.comm_id, utcnow())  # its delete after the final record was lost
    gateway.store.create(final)
    scheduled = make_comm(1, reference="SCHEDROW01")
    scheduled.status, scheduled.send_at = CommStatus.SCHEDULED, utcnow() + timedelta(hours=1)
    gateway.store.create(scheduled)

    report = worker.run_sweep(now=later(gateway))
    assert (report.dropped, report.queued) == (1, 0)
    assert rows(gateway) == [(scheduled.comm_id.hex, COMM_ROW)]  # due at its SendAt + a quiet time, not before
    assert list(gateway.store.open_work.due(later(gateway))) == []


def test_a_final_communication_whose_publish_failed_keeps_its_row_until_the_sweep_publishes(
        gateway: Gateway, sink: RecordingSink) -> None:
    comm = make_comm(1, reference="PUBFAIL001")
    gateway.store.create(comm)
    sink.fail = 1
    assert make_delivery(gateway.store, ScriptedProvider(), events=sink).deliver(comm.comm_id).sent == 1
    assert rows(gateway) == [(comm.comm_id.hex, COMM_ROW)]  # the record's mark is left: so is the row

    assert sweep_with(gateway, sink, utcnow()).recovered == 0  # the mark is fresh
    report = sweep_with(gateway, sink, later(gateway))
    assert (report.recovered, report.dropped, report.queued) == (1, 1, 0)
    assert sink.types(comm.licensee_id) == ["communication.completed", "message.sent"]
    assert rows(gateway) == []


def test_a_receipt_on_a_final_communication_lists_its_mark_before_the_change(gateway: Gateway,
                                                                             sink: RecordingSink) -> None:
    comm = make_comm(1, reference="RECEIPT001")
    gateway.store.create(comm)
    make_delivery(gateway.store, ScriptedProvider(), events=sink).deliver(comm.comm_id)
    assert rows(gateway) == []  # final, published: off the index
    sink.kill = True  # the process dies after the receipt's change, before its publish
    with pytest.raises(Killed):
        ReceiptBook(gateway.store, events=sink).apply(
            Receipt("scripted", "p-1", "delivered", ReceiptState.DELIVERED, comm_id=comm.comm_id, index=0))
    assert [key for _, key in rows(gateway)] != [] and all(key.startswith("w") for _, key in rows(gateway))
    assert gateway.store.load_header(comm.comm_id).status is CommStatus.DELIVERED

    report = sweep_with(gateway, sink, later(gateway))
    assert report.recovered == 1
    assert sink.types(comm.licensee_id) == ["communication.completed", "message.delivered", "message.sent"]
    assert rows(gateway) == []
    duplicate = ReceiptBook(gateway.store, events=sink).apply(
        Receipt("scripted", "p-1", "delivered", ReceiptState.DELIVERED, comm_id=comm.comm_id, index=0))
    assert duplicate is ReceiptOutcome.DUPLICATE


def test_a_communication_swept_is_looked_at_again_only_a_quiet_time_later(gateway: Gateway) -> None:
    comm = make_comm(1, reference="LOSTSEND01")
    gateway.store.create(comm)  # accepted, never queued
    when = later(gateway)
    assert worker.run_sweep(now=when).queued == 1
    assert list(gateway.store.open_work.due(when)) == []  # moved on: the next sweeps read nothing for it
    assert [item.comm_id for item in gateway.store.open_work.due(later(gateway, timedelta(minutes=2)))] == \
        [comm.comm_id]


def test_a_mark_an_earlier_run_left_keeps_the_row_when_a_later_run_ends_the_communication(
        gateway: Gateway, sink: RecordingSink) -> None:
    comm = make_comm(2, reference="EARLYMARK1")
    gateway.store.create(comm)
    provider = ScriptedProvider({comm.recipients_spec[1].phone_number: [Outcome.RETRY]})
    sink.fail = 1  # the first run's publish (message.sent for the first recipient) fails: its mark stays
    with pytest.raises(RetryLater):
        make_delivery(gateway.store, provider, events=sink).deliver(comm.comm_id)
    assert make_delivery(gateway.store, provider, events=sink, clock=lambda: utcnow() + timedelta(seconds=11)) \
        .deliver(comm.comm_id).status is CommStatus.SENT  # the retry ends it, its own events published
    assert rows(gateway) == [(comm.comm_id.hex, COMM_ROW)]  # the first run's mark is still there: so is the row

    report = sweep_with(gateway, sink, later(gateway))
    assert (report.recovered, report.dropped) == (1, 1)
    assert sink.types(comm.licensee_id) == ["communication.completed", "message.sent", "message.sent"]
    assert rows(gateway) == []


def test_one_look_takes_at_most_its_limit_of_due_rows(gateway: Gateway) -> None:
    open_work = gateway.store.open_work
    for _ in range(3):
        open_work.open(uuid.uuid4(), utcnow() - timedelta(hours=1))
    assert len(list(open_work.due(utcnow(), limit=2))) == 2
    assert len(list(open_work.due(utcnow(), limit=3))) == 3
