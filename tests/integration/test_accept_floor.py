"""Accepting at the storage floor: what one send costs in storage requests, counted on the wire.

A send without recipient rows and without an Idempotency-Key writes one entity: one plain insert and one
queue put, and before them its two message log rows (``LOG_ROWS``: upserts, docs/log.md), its rows by recipient
(``number_transactions``: one entity-group transaction per 100 recipients, at the same time as the log rows, so the
PhoneNumber filter of GET /api/sms reads an index; docs/log.md) and its open-work row (one upsert, ``OPEN_ROW``: so
the sweep finds it without scanning the table; docs/storage.md), nothing else (no table or queue creation in
Azure). The plain insert maps its failures as the
transaction did: a taken reference draws another, a write that got no answer (or a 5xx) is an unknown outcome.
Storage is a real Azurite, or a socket that misbehaves on purpose.
"""

from __future__ import annotations

import http.server
import math
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest

from bench.common import CountingPolicy
from devhost.azurite import connection_string, free_port
from gateway.auth import Principal
from gateway.connections import StorageClients
from gateway.models import SMSSend
from gateway.runtime import Gateway
from gateway.settings import Settings, StorageSettings
from gateway.storage import AcceptOutcomeUnknown, Communication, CommunicationStore, RecipientSpec, comm_id_for

SENDER = "+15005550006"
LOG_ROWS = 2  # the message log's rows, by licensee and by day, written before the header (docs/log.md)
OPEN_ROW = 1  # the open-work row, written before the header (docs/storage.md)
BEFORE_HEADER = LOG_ROWS + OPEN_ROW


def number_transactions(recipients: int) -> int:
    """The message log's rows by recipient: one transaction per 100, written with the log rows (docs/log.md)."""
    return math.ceil(recipients / 100)


def send(recipients: int, *, references_now: bool = False) -> SMSSend:
    return SMSSend.model_validate({
        "SMSModel": {"From": {"PhoneNumber": SENDER}, "MessageBody": "hello",
                     "To": [{"PhoneNumber": f"+4471000{n:05d}"} for n in range(recipients)]},
        "CreateCommunicationReferencesImmediately": references_now,
    })


def started(env: dict[str, str], counter: CountingPolicy, **overrides: str) -> Gateway:
    settings = Settings.from_env({"SMS_DEFAULT_SENDER": SENDER, **env, **overrides})
    clients = StorageClients.create(settings.storage, connections=settings.concurrent_calls, policies=[counter])
    return Gateway.start(settings, clients=clients)


@pytest.mark.parametrize("recipients", [1, 1000])
def test_a_single_entity_accept_is_one_insert_and_one_queue_put(storage_env: dict[str, str],
                                                                 recipients: int) -> None:
    counter = CountingPolicy()
    gateway = started(storage_env, counter)
    counter.take()
    principal = Principal("k", "tests", uuid.uuid4())
    answer = gateway.service.send(principal, send(recipients), immediate=False)
    assert counter.take() == {"table insert": 1, "queue send": 1, "table PUT entity": BEFORE_HEADER,
                              "table transaction": number_transactions(recipients)}
    stored = gateway.store.load(answer.CommId)
    assert stored is not None and len(stored.communication.recipients_spec) == recipients


def test_with_recipient_rows_or_a_key_the_rows_still_go_in_one_transaction(storage_env: dict[str, str]) -> None:
    counter = CountingPolicy()
    gateway = started(storage_env, counter)
    principal = Principal("k", "tests", uuid.uuid4())
    counter.take()
    gateway.service.send(principal, send(3, references_now=True), immediate=False)
    assert counter.take() == {"table transaction": 1 + number_transactions(3), "queue send": 1,
                              "table PUT entity": BEFORE_HEADER}
    gateway.service.send(principal, send(1), immediate=False, idempotency_key="key-1")
    accepted = counter.take()  # the key's look-up, then its row and the header together (and the number rows)
    assert accepted["table transaction"] == 1 + number_transactions(1) and "table insert" not in accepted


def test_in_azure_the_first_request_creates_no_table_or_queue(storage_env: dict[str, str]) -> None:
    setup = started(storage_env, CountingPolicy())  # Bicep's part: the resources exist
    assert setup.settings.running_in_azure is False
    counter = CountingPolicy()
    gateway = started(storage_env, counter, WEBSITE_INSTANCE_ID="0123abcd", SMS_ALLOW_OUTBOX_IN_AZURE="true")
    assert gateway.settings.running_in_azure
    gateway.service.send(Principal("k", "tests", uuid.uuid4()), send(1), immediate=False)
    assert counter.take() == {"table insert": 1, "queue send": 1, "table PUT entity": BEFORE_HEADER,
                              "table transaction": number_transactions(1)}


def test_outside_azure_starting_creates_the_tables_and_queues(storage_env: dict[str, str]) -> None:
    counter = CountingPolicy()
    started(storage_env, counter)
    made = counter.take()
    # communications, keys, message index, checks, opt-outs, inbound, reply index, webhooks, webhook events,
    # schedule, message log, open work; the delivery queue, the webhook queue and their poison queues
    assert made["table POST Tables"] == 12 and made["queue PUT"] == 4


def test_one_connection_pool_sized_for_the_workers_threads_serves_every_client(
        storage_env: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.from_env({**storage_env, "PYTHON_THREADPOOL_THREAD_COUNT": "24"})
    assert settings.concurrent_calls == 24
    gateway = Gateway.start(settings)
    clients = gateway.clients
    adapter = clients.session.get_adapter("http://127.0.0.1/")
    assert adapter._pool_maxsize == 24  # requests keeps the size only here
    transports = [clients.tables._client._client._pipeline._transport,
                  clients.worker_tables._client._client._pipeline._transport,
                  clients.queue(settings.queue_name)._pipeline._transport,
                  clients.queue(settings.queue_name, worker=True)._pipeline._transport]
    assert {id(transport.session) for transport in transports} == {id(clients.session)}
    threads = [threading.Thread(target=gateway.store.load_header, args=(uuid.uuid4(),)) for _ in range(24)]
    with caplog.at_level("WARNING", logger="urllib3.connectionpool"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert "Connection pool is full" not in caplog.text  # 24 calls at once: every connection kept for reuse


def test_a_taken_reference_draws_another(storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    counter = CountingPolicy()
    gateway = started(storage_env, counter)
    licensee = uuid.uuid4()
    taken = Communication(comm_id=comm_id_for(licensee, "TAKENREF00"), licensee_id=licensee, reference="TAKENREF00",
                          sender=SENDER, body="first", recipients_spec=[RecipientSpec("+447100000001")])
    gateway.store.create(taken)
    drawn = iter(["TAKENREF00", "FREEREF000"])
    monkeypatch.setattr("gateway.service.random_reference", lambda: next(drawn))
    counter.take()
    answer = gateway.service.send(Principal("k", "tests", licensee), send(1), immediate=False)
    assert answer.CommId == comm_id_for(licensee, "FREEREF000")
    assert counter.take() == {"table insert": 2, "queue send": 1, "table PUT entity": 2 * BEFORE_HEADER,
                              "table transaction": 2 * number_transactions(1)}
    first = gateway.store.load_header(taken.comm_id)
    assert first is not None and first.body == "first"  # the taken one is untouched


class Misbehaving(http.server.BaseHTTPRequestHandler):
    """A table endpoint that answers every POST with a 500, or (``silent``) reads it and hangs up."""

    silent = False

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.silent:
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = b'{"odata.error":{"code":"OperationTimedOut","message":{"lang":"en-US","value":"timed out"}}}'
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(params=[False, True], ids=["a 5xx", "no answer"])
def misbehaving_store(request: pytest.FixtureRequest) -> Iterator[CommunicationStore]:
    handler = type("Handler", (Misbehaving,), {"silent": request.param})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    storage = StorageSettings(connection_string=connection_string(free_port(), free_port(), port))
    clients = StorageClients.create(storage)
    try:
        yield CommunicationStore(clients.tables, "Communications")
    finally:
        server.shutdown()
        server.server_close()


def test_an_insert_without_an_answer_is_an_unknown_outcome(misbehaving_store: CommunicationStore) -> None:
    licensee = uuid.uuid4()
    comm = Communication(comm_id=comm_id_for(licensee, "ABCDEFGHJK"), licensee_id=licensee, reference="ABCDEFGHJK",
                         sender=SENDER, body="hello", recipients_spec=[RecipientSpec("+447100000001")])
    with pytest.raises(AcceptOutcomeUnknown):
        misbehaving_store.create(comm)
