"""The table layout against a real Azurite: atomic writes, point look-ups, header-last commits."""

import uuid
from datetime import UTC, datetime

import pytest
from azure.data.tables import TableTransactionError

from gateway.storage import (
    HEADER_ROW,
    MAX_ENTITY_BYTES,
    MAX_PROPERTY_UNITS,
    CommStatus,
    Communication,
    CommunicationStore,
    RecipientSpec,
    ReferenceTaken,
    TooLargeToStore,
    _chunks,
    _unchunk,
    check_fits,
    comm_id_for,
    entity_bytes,
    utf16_units,
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
    assert counting.transactions == []  # one entity: a plain insert (tests/integration/test_accept_floor.py)
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


def test_sizes_are_counted_in_utf16_code_units() -> None:
    assert [utf16_units(text) for text in ("", "abc", "caf\u00e9", "\U0001f600", "a\U0001f600b")] == [0, 3, 4, 2, 4]


def test_entity_bytes_is_the_documented_formula() -> None:
    entity = {"PartitionKey": "p", "RowKey": "r", "Name": "ab", "Flag": True, "Count": 3,
              "When": datetime(2024, 1, 1, tzinfo=UTC)}
    # 4 + keys 2*2, then per property 8 + 2*len(name) + value: "ab" 4+2*2, bool 1, int 4, date 8
    assert entity_bytes(entity) == 4 + 4 + (8 + 8 + 8) + (8 + 8 + 1) + (8 + 10 + 4) + (8 + 8 + 8)


def test_chunks_never_split_a_surrogate_pair_and_join_back() -> None:
    text = "a" * (MAX_PROPERTY_UNITS - 1) + "\U0001f600" + "b" * MAX_PROPERTY_UNITS
    chunks = _chunks(text)
    assert [utf16_units(chunk) for chunk in chunks.values()] == [MAX_PROPERTY_UNITS - 1, MAX_PROPERTY_UNITS, 2]
    assert all(chunk.encode("utf-8") for chunk in chunks.values())  # each one is text on its own
    assert _unchunk(chunks) == text
    assert _chunks("") == {"Recipients0": ""} and _unchunk({"Recipients0": ""}) == ""


def test_check_fits_names_the_property_that_is_too_large() -> None:
    keys = {"PartitionKey": "p" * 32, "RowKey": "comm"}
    check_fits({**keys, "Body": "x" * MAX_PROPERTY_UNITS})
    with pytest.raises(TooLargeToStore) as raised:
        check_fits({**keys, "Body": "\U0001f600" * (MAX_PROPERTY_UNITS // 2) + "x"})
    assert raised.value.property_name == "Body"
    chunks = _chunks("y" * (MAX_ENTITY_BYTES // 2))
    with pytest.raises(TooLargeToStore) as raised:
        check_fits({**keys, "Body": "z" * 100, **chunks})
    assert raised.value.property_name == "Recipients" and len(chunks) == 16


def test_a_row_too_large_to_store_writes_nothing(store: CommunicationStore) -> None:
    comm = make_comm(150)
    comm.recipients_spec = [RecipientSpec(spec.phone_number, "\U0001f600" * 256) for spec in comm.recipients_spec] * 7
    with pytest.raises(TooLargeToStore):
        store.create(comm, comm.planned_recipients())
    assert list(store._table.list_entities()) == []
