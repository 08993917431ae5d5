"""The table layout against a real Azurite: atomic writes, point look-ups, header-last commits."""

import uuid

import pytest
from azure.data.tables import TableTransactionError

from gateway.storage import (
    HEADER_ROW,
    CommStatus,
    Communication,
    CommunicationStore,
    RecipientSpec,
    ReferenceTaken,
    comm_id_for,
)


class CountingTable:
    """Wraps a TableClient to count transactions and optionally fail the n-th."""

    def __init__(self, inner, fail_on: int | None = None) -> None:
        self.inner = inner
        self.transactions: list[int] = []
        self.fail_on = fail_on

    def submit_transaction(self, operations):
        self.transactions.append(len(operations))
        if self.fail_on is not None and len(self.transactions) == self.fail_on:
            raise ConnectionError("injected failure")
        return self.inner.submit_transaction(operations)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def make_comm(recipients: int, licensee: uuid.UUID | None = None, reference: str = "ABCDEFGHJK") -> Communication:
    licensee = licensee or uuid.uuid4()
    return Communication(
        comm_id=comm_id_for(licensee, reference),
        licensee_id=licensee,
        reference=reference,
        sender="+15005550006",
        body="hello, world: {test} [x] \"q\"",
        recipients_spec=[RecipientSpec(f"+1415555{n:04d}", name=f"n{n}") for n in range(recipients)],
    )


@pytest.fixture
def store(make_gateway) -> CommunicationStore:
    return make_gateway().store


def test_one_recipient_is_one_transaction_and_reads_back(store: CommunicationStore) -> None:
    counting = CountingTable(store._table)
    store._table = counting
    comm = make_comm(1)
    store.create(comm, comm.planned_recipients())
    assert counting.transactions == [2]
    snapshot = store.load(comm.comm_id)
    assert snapshot is not None
    assert snapshot.communication.reference == comm.reference
    assert snapshot.communication.body == comm.body
    assert snapshot.communication.status is CommStatus.QUEUED
    assert [r.phone_number for r in snapshot.stored_recipients] == ["+14155550000"]


def test_large_send_uses_as_few_transactions_as_possible(store: CommunicationStore) -> None:
    counting = CountingTable(store._table)
    store._table = counting
    comm = make_comm(250)
    store.create(comm, comm.planned_recipients())
    assert counting.transactions == [100, 100, 51]  # 250 recipient rows + the header
    snapshot = store.load(comm.comm_id)
    assert snapshot is not None and len(snapshot.stored_recipients) == 250
    assert [spec.phone_number for spec in snapshot.communication.recipients_spec] == [
        spec.phone_number for spec in comm.recipients_spec
    ]


def test_header_is_written_last_so_a_failed_write_is_not_accepted(store: CommunicationStore) -> None:
    store._table = CountingTable(store._table, fail_on=3)
    comm = make_comm(250)
    with pytest.raises(ConnectionError):
        store.create(comm, comm.planned_recipients())
    assert store.load(comm.comm_id) is None


def test_without_references_the_header_alone_carries_every_recipient(store: CommunicationStore) -> None:
    counting = CountingTable(store._table)
    store._table = counting
    comm = make_comm(1000)
    store.create(comm)
    assert counting.transactions == [1]
    snapshot = store.load(comm.comm_id)
    assert snapshot is not None and snapshot.stored_recipients == []
    assert len(snapshot.communication.planned_recipients()) == 1000


def test_reference_is_unique_per_licensee(store: CommunicationStore) -> None:
    licensee = uuid.uuid4()
    store.create(make_comm(1, licensee))
    with pytest.raises(ReferenceTaken):
        store.create(make_comm(1, licensee))
    store.create(make_comm(1, uuid.uuid4()))  # same reference, other licensee: another CommId


def test_comm_id_is_derived_from_licensee_and_reference() -> None:
    licensee = uuid.uuid4()
    assert comm_id_for(licensee, "abcdefghjk") == comm_id_for(licensee, "ABCDEFGHJK")
    assert comm_id_for(licensee, "ABCDEFGHJK") != comm_id_for(uuid.uuid4(), "ABCDEFGHJK")


def test_conflict_inside_a_transaction_writes_nothing(store: CommunicationStore) -> None:
    comm = make_comm(3)
    store.create(comm, comm.planned_recipients())
    table = store._table
    with pytest.raises(TableTransactionError):
        table.submit_transaction(
            [("create", {"PartitionKey": comm.comm_id.hex, "RowKey": "zz-new"}),
             ("create", {"PartitionKey": comm.comm_id.hex, "RowKey": HEADER_ROW})]
        )
    assert [e["RowKey"] for e in table.query_entities("RowKey eq 'zz-new'")] == []
