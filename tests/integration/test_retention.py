"""Retention against a real Azurite: a communication older than SMS_RETENTION_DAYS goes with every row that is its
own or points at it, a younger one and the opt-out list stay, a run takes a bounded batch found through the message
log's day rows (a run with nothing old costs one query), and log rows without a communication are cleaned up."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from azure.data.tables import TableServiceClient

from bench.common import CountingPolicy
from gateway import worker
from gateway.auth import Principal
from gateway.connections import StorageClients
from gateway.inbound import InboundMessage, InboundStore
from gateway.message_index import IndexEntry, MessageIndex
from gateway.message_log import LogEntry, MessageLog, number_partition, number_row_key
from gateway.models import SMSSend
from gateway.open_work import OpenWork
from gateway.optouts import OptOutList
from gateway.receipt_checks import ReceiptChecks, Watch
from gateway.retention import Retention, Tables
from gateway.retention_links import _delete_rows
from gateway.runtime import Gateway, use_gateway
from gateway.settings import Settings
from gateway.storage import EventMark, ReplyRecord
from gateway.webhook_emit import reply_event
from gateway.webhook_endpoints import WebhookEndpoints
from gateway.webhook_events import EventType, event_id_for
from gateway.webhook_outbox import FAILED, AttemptFailed
from tests.server import GatewayServer, server_env
from tests.waiting import wait_until

SENDER = "+15005550006"
NUMBER = "+447911123456"
DAYS = 90


def send(gateway: Gateway, licensee: uuid.UUID) -> uuid.UUID:
    request = SMSSend.model_validate({"SMSModel": {"MessageBody": "hello", "To": [{"PhoneNumber": NUMBER}]}})
    answer = gateway.service.send(Principal("k", "tests", licensee), request, immediate=True)
    assert answer.CommId is not None
    return answer.CommId


def rows(tables: TableServiceClient, table: str, partition: str) -> list[dict]:
    return list(tables.get_table_client(table).query_entities("PartitionKey eq @pk", parameters={"pk": partition}))


def test_an_old_communication_goes_with_everything_of_its_own_and_the_rest_stays(make_gateway) -> None:
    gateway = make_gateway(SMS_RETENTION_DAYS=str(DAYS))
    settings, tables = gateway.settings, gateway.clients.tables
    licensee = uuid.uuid4()
    old = send(gateway, licensee)
    # What else points at it: a message-id index row, a reply (its row and its inbound row); then an opt-out.
    snapshot = gateway.store.load(old)
    assert snapshot is not None
    message_id = snapshot.stored_recipients[0].provider_message_id
    assert message_id is not None  # the outbox's own id for the message it recorded
    MessageIndex(tables, settings.message_index_table).record("outbox", [IndexEntry(message_id, old, 0)])
    reply = ReplyRecord(provider="twilio", message_id="SMreply", index=0, sender=NUMBER, to=SENDER, body="STOP",
                        received_at=datetime.now(UTC))
    gateway.store.save_reply(old, reply)
    InboundStore(tables, settings.inbound_table).record(
        InboundMessage("twilio", "SMreply", NUMBER, SENDER, "STOP"), datetime.now(UTC))
    time.sleep(0.01)
    between = datetime.now(UTC)
    young = send(gateway, licensee)
    OptOutList(tables, settings.optouts_table).add(licensee, NUMBER, reason="stop", source="twilio")
    assert rows(tables, settings.outbox_table, old.hex) and rows(tables, settings.communications_table, old.hex)

    use_gateway(gateway)
    try:
        report = worker.delete_expired(between + timedelta(days=DAYS))
    finally:
        use_gateway(None)

    assert report is not None and report.communications == 1 and report.deleted == [old.hex]
    assert rows(tables, settings.communications_table, old.hex) == []  # header, recipient, reply rows
    assert rows(tables, settings.outbox_table, old.hex) == []
    assert MessageIndex(tables, settings.message_index_table).find("outbox", message_id) is None
    assert rows(tables, settings.inbound_table, "SMreply") == []
    assert [row["CommId"] for row in rows(tables, settings.message_log_table, licensee.hex)] == [young.hex]
    # Its row by recipient (GET /api/sms?PhoneNumber=) went too, before the day row; the younger one's stays.
    assert [row["CommId"] for row in rows(tables, settings.message_log_table, number_partition(licensee))] == [
        young.hex]
    assert gateway.store.load_header(young) is not None and rows(tables, settings.outbox_table, young.hex)
    assert OptOutList(tables, settings.optouts_table).find(licensee, NUMBER) is not None  # never deleted


def test_its_webhook_events_open_work_and_receipt_checks_go_too_and_nobody_else_s(storage_env, make_gateway) -> None:
    """Events found by the ids its rows imply (a delivered one, a Failed one with its failed-list row, a reply's),
    its open-work rows and its watch rows go; the younger communication's, another licensee's and the opt-out stay.
    Requests counted: each kind costs one query for a one-recipient communication."""
    gateway = make_gateway(SMS_RETENTION_DAYS=str(DAYS))
    settings, tables = gateway.settings, gateway.clients.tables
    licensee, other = uuid.uuid4(), uuid.uuid4()
    endpoints = WebhookEndpoints(tables, settings.webhooks_table, allow_private=True, require_https=False)
    for each in (licensee, other):
        endpoints.set(each, "http://127.0.0.1:9/hook")  # never called: no dispatcher runs here
    old = send(gateway, licensee)  # publishes message.sent and communication.completed
    outbox = gateway.webhook_outbox
    sent_id, completed_id = event_id_for(old, EventType.SENT, 0), event_id_for(old, EventType.COMPLETED)
    sent_event, completed_event = outbox.find_many(licensee, [sent_id, completed_id])
    outbox.mark_delivered(sent_event, datetime.now(UTC))
    outbox.record_failures([AttemptFailed(completed_event, "HTTP 500", None)], datetime.now(UTC))
    assert [event.status for event in outbox.failed(licensee)] == [FAILED]  # with its failed-list row
    reply = ReplyRecord(provider="twilio", message_id="SMreply", index=0, sender=NUMBER, to=SENDER, body="yes",
                        received_at=datetime.now(UTC))
    gateway.store.save_reply(old, reply)
    event = reply_event(gateway.store.load_header(old), reply)
    assert event is not None
    outbox.publish([event])
    open_work = OpenWork(tables, settings.open_work_table, timedelta(minutes=5))
    open_work.open(old, datetime.now(UTC))  # as a stuck communication would have it
    open_work.list_mark(EventMark(old, (event.event_id,), datetime.now(UTC)))
    recipient = gateway.store.load(old).stored_recipients[0]
    checks = ReceiptChecks(tables, settings.receipt_checks_table)
    sent_at = recipient.updated_at
    checks.watch([Watch(old, 0, "SMold", "twilio", sent_at, sent_at + timedelta(hours=48), checks=3)])
    time.sleep(0.01)
    between = datetime.now(UTC)
    young, theirs = send(gateway, licensee), send(gateway, other)
    young_watch = Watch(young, 0, "SMyoung", "twilio", sent_at, sent_at + timedelta(hours=47))  # sent in old's window
    checks.watch([young_watch])
    OptOutList(tables, settings.optouts_table).add(licensee, NUMBER, reason="stop", source="twilio")
    kept = {row["RowKey"] for row in rows(tables, settings.webhook_events_table, licensee.hex)
            if row.get("CommId") == young.hex}
    theirs_kept = rows(tables, settings.webhook_events_table, other.hex)
    assert len(kept) == 2 and {row["CommId"] for row in theirs_kept} == {theirs.hex} and len(theirs_kept) == 2

    counter = CountingPolicy()
    clients = StorageClients.create(settings.storage, connections=4, policies=[counter])
    retention = Retention(MessageLog(clients.tables, settings.message_log_table), Tables.of(clients.tables, settings),
                          days=DAYS, provider=settings.provider)
    counter.take()
    report = retention.run(between + timedelta(days=DAYS))

    assert report.deleted == [old.hex]
    assert {row["RowKey"] for row in rows(tables, settings.webhook_events_table, licensee.hex)} == kept  # no failed_
    assert rows(tables, settings.webhook_events_table, other.hex) == theirs_kept
    assert rows(tables, settings.open_work_table, old.hex) == []
    assert [row["CommId"] for row in rows(tables, settings.receipt_checks_table, "due")] == [young.hex]
    assert OptOutList(tables, settings.optouts_table).find(licensee, NUMBER) is not None
    # The day index, the partition, the outbox rows, then one query each: events (4 ids), open work, watch rows.
    assert counter.take()["table query"] == 1 + 1 + 1 + 3
    assert report.linked_rows >= 4 + 2 + 1  # 3 events and a failed-list row, 2 open-work rows, 1 watch row
    assert retention.run(between + timedelta(days=DAYS)).communications == 0


def test_a_run_takes_a_bounded_batch_through_the_day_index_and_drops_log_rows_without_a_communication(
        storage_env: dict[str, str], make_gateway) -> None:
    gateway = make_gateway()
    licensee = uuid.uuid4()
    sent = [send(gateway, licensee) for _ in range(3)]
    log = MessageLog(gateway.clients.tables, gateway.settings.message_log_table)
    # An accept that failed after its log rows: its rows by recipient go too, named by the day row, even the batch
    # whose row is already gone (a run cut off, or a write that never happened), row by row.
    orphan = LogEntry(licensee, uuid.uuid4(), datetime.now(UTC) - timedelta(days=400), ("+447700900001", NUMBER))
    log.add(orphan)
    log_table = gateway.clients.tables.get_table_client(gateway.settings.message_log_table)
    log_table.delete_entity(number_partition(licensee), number_row_key("+447700900001", orphan))
    assert len(rows(gateway.clients.tables, gateway.settings.message_log_table, number_partition(licensee))) == 3 + 1
    counter = CountingPolicy()
    settings = Settings.from_env({"SMS_DEFAULT_SENDER": SENDER, **storage_env})
    clients = StorageClients.create(settings.storage, connections=4, policies=[counter])
    retention = Retention(MessageLog(clients.tables, settings.message_log_table), Tables.of(clients.tables, settings),
                          days=DAYS, provider=settings.provider, batch=2)

    counter.take()
    assert retention.run(datetime.now(UTC)).orphans == 1  # only the 400-day-old log row is old enough
    assert counter.take()["table query"] == 1 + 1  # the day index, then the orphan's partition (empty)
    assert retention.run(datetime.now(UTC)).communications == 0
    assert counter.take() == {"table query": 1}  # nothing old: one range query, whatever the table holds

    later = datetime.now(UTC) + timedelta(days=DAYS, seconds=1)
    first, second = retention.run(later), retention.run(later)
    assert (first.communications, second.communications) == (2, 1)  # at most the batch per run, oldest first
    assert first.deleted == [comm.hex for comm in sent[:2]] and second.deleted == [sent[2].hex]
    assert retention.run(later).communications == 0
    assert rows(gateway.clients.tables, settings.message_log_table, licensee.hex) == []
    assert rows(gateway.clients.tables, settings.message_log_table, number_partition(licensee)) == []


def test_the_local_host_runs_retention_on_its_schedule(storage_connection: str) -> None:
    """function_app.py binds retention to ``SMS_RETENTION_SCHEDULE``; the local host runs it like the sweep: an old
    log row without a communication is gone within seconds of a once-a-second schedule."""
    env = server_env(storage_connection, SMS_RETENTION_SCHEDULE="* * * * * *")
    gateway = Gateway.create(Settings.from_env({"SMS_DEFAULT_SENDER": SENDER, **env}))
    gateway.ensure_resources()
    licensee = uuid.uuid4()
    MessageLog(gateway.clients.tables, gateway.settings.message_log_table).add(
        LogEntry(licensee, uuid.uuid4(), datetime.now(UTC) - timedelta(days=DAYS + 1)))
    server = GatewayServer.start(env, "--no-queues")
    try:
        wait_until(lambda: rows(gateway.clients.tables, gateway.settings.message_log_table, licensee.hex) == [],
                   timeout=30, what="the retention timer to drop the old log row")
    finally:
        server.stop()
    assert "retention" in server.log_text()


def test_a_delete_transaction_that_meets_a_row_already_gone_is_finished_row_by_row(make_gateway) -> None:
    """A run cut off half-way, or a retry that removed a failed-list row meanwhile, leaves a transaction naming a row
    that is gone: Table Storage refuses the whole transaction, so the rest is deleted one by one."""
    gateway = make_gateway()
    table = gateway.clients.tables.get_table_client(gateway.settings.open_work_table)
    partition = uuid.uuid4().hex
    for key in ("a", "b"):
        table.upsert_entity({"PartitionKey": partition, "RowKey": key})
    assert _delete_rows(table, partition, [["a", "gone"], ["b"]]) == 3
    assert rows(gateway.clients.tables, gateway.settings.open_work_table, partition) == []
