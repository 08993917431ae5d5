"""Scheduled sends, ValidUntil and cancel against a real Azurite: nothing goes before its SendAt, nothing after its
ValidUntil or its cancel, a lost scheduled message is still found, and a cancel racing a worker never lets both win.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import azure.functions as func
import pytest

from gateway import worker
from gateway.auth import Principal
from gateway.cancel import Canceler
from gateway.delivery import EXPIRED, DeliveryInProgress, NotDueYet, RetryLater
from gateway.errors import ApiError
from gateway.models import SMSSend
from gateway.providers.base import Outcome
from gateway.providers.common import TIMEOUT
from gateway.queue import MAX_DELAY_SECONDS, encode_message
from gateway.runtime import use_gateway
from gateway.schedule import ScheduledSend
from gateway.service import SendService
from gateway.status import describe
from gateway.storage import CommStatus, ConcurrentUpdate, RecipientState, utcnow
from tests.integration.test_delivery import ScriptedProvider, make_delivery, stored
from tests.integration.test_recovery import dead_queue
from tests.integration.test_retry_delay import BusyProvider, RecordingQueue
from tests.integration.test_storage import make_comm
from tests.integration.test_webhook_emit import RecordingSink
from tests.samples import NUMBERS, send_body


@pytest.fixture
def gateway(make_gateway):
    gateway = make_gateway()
    gateway.provider_fake = ScriptedProvider()
    gateway.queue = RecordingQueue(gateway.clients.queue(gateway.settings.queue_name))
    gateway.delivery = make_delivery(gateway.store, gateway.provider_fake, schedule=gateway.schedule)
    gateway.service = SendService(gateway.settings, gateway.store, gateway.queue, gateway.delivery)
    gateway.canceler = Canceler(gateway.store, gateway.delivery)
    use_gateway(gateway)
    yield gateway
    use_gateway(None)


def principal(licensee: uuid.UUID | None = None) -> Principal:
    return Principal("k", "tests", licensee or uuid.uuid4())


def schedule(gateway, send_at: datetime, *numbers: str, who: Principal | None = None, **timing: str):
    request = SMSSend.model_validate({**send_body(*(numbers or NUMBERS[:2])), "SendAt": send_at.isoformat(),
                                      **timing})
    return gateway.service.send(who or principal(), request, immediate=False)


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def run_message(gateway, comm_id: uuid.UUID) -> None:
    worker.handle_delivery_message(func.QueueMessage(id="m", body=encode_message(comm_id).encode()))


def due_rows(gateway, before: datetime) -> list[uuid.UUID]:
    return [send.comm_id for send in gateway.schedule.due(before=before)]


def test_a_send_ten_days_ahead_waits_seven_days_in_the_queue_then_again_and_goes_at_its_time(gateway) -> None:
    send_at = utcnow() + timedelta(days=10)
    response = schedule(gateway, send_at)
    assert response.Status is True and response.Message.startswith("Scheduled for delivery to 2 recipients at ")
    header = gateway.store.load_header(response.CommId)
    assert header.status is CommStatus.SCHEDULED and header.send_at == send_at
    assert gateway.queue.enqueued == [(MAX_DELAY_SECONDS, 0)]  # the longest a queue allows: it comes back early
    assert gateway.clients.queue(gateway.settings.queue_name).peek_messages() == []  # out of sight
    assert due_rows(gateway, send_at + timedelta(seconds=1)) == [response.CommId]
    assert due_rows(gateway, send_at - timedelta(seconds=1)) == []

    run_message(gateway, response.CommId)  # the seven days are up (or a replay, or the sweep): too early still
    delay, attempt = gateway.queue.enqueued[-1]
    assert attempt == 0 and MAX_DELAY_SECONDS - 5 < delay <= MAX_DELAY_SECONDS  # no attempt spent
    assert gateway.provider_fake.sent == []
    assert gateway.store.load_header(response.CommId).status is CommStatus.SCHEDULED

    at_time = make_delivery(gateway.store, gateway.provider_fake, schedule=gateway.schedule,
                            clock=at(send_at + timedelta(seconds=1)))
    report = at_time.deliver(response.CommId)
    assert report.status is CommStatus.SENT and sorted(gateway.provider_fake.numbers()) == sorted(NUMBERS[:2])
    assert due_rows(gateway, send_at + timedelta(days=1)) == []  # released: off the index


def test_a_run_before_send_at_sends_nothing(gateway) -> None:
    response = schedule(gateway, utcnow() + timedelta(minutes=5))
    with pytest.raises(NotDueYet) as early:
        gateway.delivery.deliver(response.CommId)
    assert 280 < early.value.wait_seconds <= 300
    assert gateway.provider_fake.sent == []


def test_the_sweep_queues_a_scheduled_send_whose_message_was_lost_and_drops_dead_index_rows(gateway) -> None:
    real_queue = gateway.queue
    gateway.service._queue = dead_queue(gateway.settings.queue_name)  # stored and listed, never queued
    send_at = utcnow() + timedelta(seconds=30)
    lost = schedule(gateway, send_at)
    gateway.service._queue = real_queue
    orphan = ScheduledSend(uuid.uuid4(), send_at)  # an accept that failed after its index row
    gateway.schedule.add(orphan)
    quiet = timedelta(seconds=gateway.settings.sweep_after_seconds + 1)

    assert worker.sweep(now=send_at) == 0  # not due yet
    assert worker.sweep(now=send_at + quiet) == 1
    assert real_queue.enqueued[-1] == (0, 0)
    assert due_rows(gateway, send_at + timedelta(days=1)) == [lost.CommId]  # the orphan is dropped
    assert worker.sweep(now=send_at + quiet) == 0  # queued just now: left to that message

    late = make_delivery(gateway.store, gateway.provider_fake, schedule=gateway.schedule, clock=at(send_at + quiet))
    assert late.deliver(lost.CommId).status is CommStatus.SENT
    assert due_rows(gateway, send_at + timedelta(days=1)) == []


def test_a_row_left_by_a_release_the_crash_cut_short_is_dropped(gateway) -> None:
    send_at = utcnow() + timedelta(seconds=30)
    response = schedule(gateway, send_at)
    gateway.delivery._schedule = None  # the release's delete never happens
    make_delivery(gateway.store, gateway.provider_fake, clock=at(send_at)).deliver(response.CommId)
    assert due_rows(gateway, send_at + timedelta(seconds=1)) == [response.CommId]
    assert worker.sweep(now=send_at + timedelta(minutes=5)) == 0
    assert due_rows(gateway, send_at + timedelta(seconds=1)) == []


def test_a_released_send_created_long_ago_is_still_found_by_the_sweep(gateway) -> None:
    now = utcnow()
    comm = make_comm(2, reference="OLDSCHED01")
    comm.created_at, comm.updated_at = now - timedelta(days=20), now - timedelta(hours=1)
    comm.send_at, comm.status = now - timedelta(hours=1), CommStatus.QUEUED  # released, then its run was lost
    gateway.store.create(comm)
    assert [item.comm_id for item in gateway.store.open_work.due(now)] == [comm.comm_id]  # due since SendAt + S


def test_recipients_still_unsent_at_valid_until_end_expired_and_never_reach_the_provider(gateway) -> None:
    comm = stored(gateway.store, 3)
    comm.valid_until = utcnow() - timedelta(seconds=1)
    gateway.store._table.update_entity({"PartitionKey": comm.comm_id.hex, "RowKey": "comm",
                                        "ValidUntil": comm.valid_until})
    report = gateway.delivery.deliver(comm.comm_id)
    assert report.status is CommStatus.EXPIRED and (report.sent, report.failed) == (0, 3)
    assert gateway.provider_fake.sent == []
    snapshot = gateway.store.load(comm.comm_id)
    assert {(r.status, r.error_code) for r in snapshot.stored_recipients} == {(RecipientState.EXPIRED, EXPIRED)}
    shown = describe(snapshot)
    assert (shown.Status, shown.ExpiredCount, shown.FailedCount) == ("Expired", 3, 3)


def test_a_retry_comes_back_at_valid_until_and_a_give_up_after_it_is_expired(make_gateway) -> None:
    gateway = make_gateway(SMS_RETRY_BASE_SECONDS="600")
    gateway.queue = RecordingQueue(gateway.clients.queue(gateway.settings.queue_name))
    gateway.delivery = make_delivery(gateway.store, BusyProvider(3600.0))
    gateway.service = SendService(gateway.settings, gateway.store, gateway.queue, gateway.delivery)
    valid_until = utcnow() + timedelta(seconds=90)
    response = gateway.service.send(principal(), SMSSend.model_validate(
        {**send_body(), "ValidUntil": valid_until.isoformat()}), immediate=False)
    use_gateway(gateway)
    try:
        run_message(gateway, response.CommId)
    finally:
        use_gateway(None)
    delay, attempt = gateway.queue.enqueued[-1]
    assert attempt == 1 and 85 <= delay <= 90  # not the hour the provider asked for

    expired = make_delivery(gateway.store, BusyProvider(None), clock=at(valid_until)).give_up(
        response.CommId, "Delivery abandoned after 5 attempts")
    assert expired.status is CommStatus.EXPIRED
    [row] = gateway.store.load(response.CommId).stored_recipients
    assert row.status is RecipientState.EXPIRED and "ValidUntil" in row.error_message


def test_a_give_up_before_valid_until_still_fails(gateway) -> None:
    comm = stored(gateway.store, 1)
    gateway.store._table.update_entity({"PartitionKey": comm.comm_id.hex, "RowKey": "comm",
                                        "ValidUntil": utcnow() + timedelta(hours=1)})
    assert gateway.delivery.give_up(comm.comm_id, "gave up").status is CommStatus.FAILED


def test_a_canceled_scheduled_send_ends_canceled_off_the_index_and_its_message_sends_nothing(gateway) -> None:
    who = principal()
    send_at = utcnow() + timedelta(minutes=10)
    response = schedule(gateway, send_at, *NUMBERS[:3], who=who)
    with pytest.raises(ApiError) as other:
        gateway.canceler.by_id(principal(), response.CommId.hex)
    assert other.value.status == 404
    with pytest.raises(ApiError) as unknown:
        gateway.canceler.by_id(who, "not-a-guid")
    assert unknown.value.status == 404

    answer = gateway.canceler.by_id(who, str(response.CommId))
    assert (answer.CanceledCount, answer.Status, answer.Reference) == (3, "Canceled", response.Reference)
    assert due_rows(gateway, send_at + timedelta(days=1)) == []
    again = gateway.canceler.by_id(who, response.CommId.hex)
    assert (again.CanceledCount, again.Status) == (0, "Canceled")

    late = make_delivery(gateway.store, gateway.provider_fake, schedule=gateway.schedule,
                         clock=at(send_at + timedelta(minutes=1)))
    assert late.deliver(response.CommId).status is CommStatus.CANCELED
    assert gateway.provider_fake.sent == []
    shown = describe(gateway.store.load(response.CommId))
    assert (shown.Status, shown.CanceledCount, shown.PendingCount) == ("Canceled", 3, 0)


def test_a_cancel_leaves_what_was_sent_claimed_or_may_have_reached_the_provider(gateway) -> None:
    comm = stored(gateway.store, 4, rows_now=True)
    snapshot = gateway.store.load(comm.comm_id)
    sent, sending, maybe, _ = snapshot.stored_recipients
    sent.status, sent.provider_message_id = RecipientState.SENT, "p-1"
    sending.status, sending.claimed_at = RecipientState.SENDING, utcnow()
    maybe.error_code = TIMEOUT
    header = snapshot.communication
    header.status = CommStatus.SENDING
    gateway.store.save(header, [sent, sending, maybe])

    done = gateway.canceler.cancel(comm.licensee_id, comm.comm_id)
    assert (done.canceled, done.status) == (1, CommStatus.SENDING)
    states = [r.status for r in gateway.store.load(comm.comm_id).stored_recipients]
    assert states == [RecipientState.SENT, RecipientState.SENDING, RecipientState.PENDING, RecipientState.CANCELED]


class RacingStore:
    """The store, running ``race`` once right after the first load: a worker acting between a cancel's read and
    its write."""

    def __init__(self, store, race: Callable[[], object]) -> None:
        self._store, self._race = store, race

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def load(self, comm_id, rows=None):
        snapshot = self._store.load(comm_id, rows)
        race, self._race = self._race, None
        if race is not None:
            race()
        return snapshot


@pytest.mark.parametrize("rows_now", [False, True])  # the cancel's write: a create, or a replace on the ETag read
def test_a_worker_claiming_between_the_cancels_read_and_write_wins_and_the_cancel_reads_again(gateway,
                                                                                             rows_now: bool) -> None:
    comm = stored(gateway.store, 4, rows_now=rows_now)
    racing = Canceler(RacingStore(gateway.store, lambda: gateway.delivery.deliver(comm.comm_id)), gateway.delivery)
    done = racing.cancel(comm.licensee_id, comm.comm_id)
    assert (done.canceled, done.status) == (0, CommStatus.SENT)
    assert len(gateway.provider_fake.sent) == 4
    assert {r.status for r in gateway.store.load(comm.comm_id).stored_recipients} == {RecipientState.SENT}


def test_a_cancel_between_a_workers_batches_stops_the_rest_and_the_provider_never_gets_them(gateway) -> None:
    comm = stored(gateway.store, 4)
    canceled: list[int] = []

    class CancelingProvider(ScriptedProvider):
        max_batch_size = 2

        def send(self, messages, deadline=None):
            if not canceled:  # the first batch is claimed (Sending): the cancel takes the other two
                canceled.append(gateway.canceler.cancel(comm.licensee_id, comm.comm_id).canceled)
            return super().send(messages, deadline)

    provider = CancelingProvider()
    delivery = make_delivery(gateway.store, provider)
    with pytest.raises(DeliveryInProgress):  # its claim of the second batch lost to the cancel
        delivery.deliver(comm.comm_id)
    assert canceled == [2]
    assert provider.numbers() == [spec.phone_number for spec in comm.recipients_spec[:2]]
    assert delivery.deliver(comm.comm_id).status is CommStatus.PARTIALLY_SENT  # the next run settles the header
    assert len(provider.sent) == 2
    shown = describe(gateway.store.load(comm.comm_id))
    assert (shown.Status, shown.SentCount, shown.CanceledCount) == ("PartiallySent", 2, 2)


def test_nothing_sent_with_one_failed_and_the_rest_canceled_ends_failed(gateway) -> None:
    comm = stored(gateway.store, 2)
    first, second = (spec.phone_number for spec in comm.recipients_spec)
    gateway.provider_fake.script = {first: [Outcome.FAILED], second: [Outcome.RETRY]}
    with pytest.raises(RetryLater):
        gateway.delivery.deliver(comm.comm_id)
    done = gateway.canceler.cancel(comm.licensee_id, comm.comm_id)  # the one waiting for its retry
    assert (done.canceled, done.status) == (1, CommStatus.FAILED)


def test_cancel_and_expiry_publish_their_events_and_the_completion(gateway) -> None:
    sink = RecordingSink(gateway.clients.worker_tables, f"{gateway.settings.communications_table}Events")
    delivery = make_delivery(gateway.store, gateway.provider_fake, events=sink)
    canceled = stored(gateway.store, 2)
    Canceler(gateway.store, delivery, sink).cancel(canceled.licensee_id, canceled.comm_id)
    assert sink.types(canceled.licensee_id) == ["communication.completed", "message.canceled", "message.canceled"]
    completed = next(body for body in sink.stored(canceled.licensee_id).values()
                     if body["type"] == "communication.completed")
    assert completed["data"]["Status"] == "Canceled"

    expired = stored(gateway.store, 1)
    gateway.store._table.update_entity({"PartitionKey": expired.comm_id.hex, "RowKey": "comm",
                                        "ValidUntil": utcnow() - timedelta(seconds=1)})
    delivery.deliver(expired.comm_id)
    assert sink.types(expired.licensee_id) == ["communication.completed", "message.expired"]
    assert gateway.provider_fake.sent == []


def test_the_sweep_reads_the_index_oldest_first_a_bounded_number_at_a_time(gateway) -> None:
    due = utcnow() - timedelta(days=3)
    sends = [ScheduledSend(uuid.uuid4(), due + timedelta(days=n, seconds=n)) for n in (2, 0, 1)]
    for send in sends:
        gateway.schedule.add(send)
    assert [send.comm_id for send in gateway.schedule.due(utcnow(), limit=2)] == [sends[1].comm_id, sends[2].comm_id]
    assert [send.due for send in gateway.schedule.due(utcnow())] == sorted(send.due for send in sends)


def test_a_cancel_that_keeps_losing_to_workers_answers_503_to_retry(gateway) -> None:
    comm = stored(gateway.store, 2)

    class ContendedStore(RacingStore):
        def save(self, *args, **kwargs):
            raise ConcurrentUpdate(comm.comm_id.hex)

    with pytest.raises(ApiError) as contended:
        Canceler(ContendedStore(gateway.store, lambda: None), gateway.delivery).cancel(comm.licensee_id, comm.comm_id)
    assert contended.value.status == 503 and contended.value.headers["Retry-After"]
    assert {r.status for r in gateway.store.load(comm.comm_id).all_recipients()} == {RecipientState.PENDING}


def test_a_cancel_with_nothing_left_to_cancel_still_puts_a_stale_header_right(gateway) -> None:
    comm = stored(gateway.store, 2, rows_now=True)
    snapshot = gateway.store.load(comm.comm_id)
    header, (sent, canceled) = snapshot.communication, snapshot.stored_recipients
    sent.status, canceled.status = RecipientState.SENT, RecipientState.CANCELED
    header.status = CommStatus.SENDING  # a record that counted the canceled row open, written after the cancel
    gateway.store.save(header, [sent, canceled])
    again = gateway.canceler.cancel(comm.licensee_id, comm.comm_id)
    assert (again.canceled, again.status) == (0, CommStatus.PARTIALLY_SENT)
    assert gateway.store.load_header(comm.comm_id).status is CommStatus.PARTIALLY_SENT


def test_a_cancel_of_more_than_one_transaction_writes_them_all_with_their_events(gateway) -> None:
    sink = RecordingSink(gateway.clients.worker_tables, f"{gateway.settings.communications_table}Events")
    comm = stored(gateway.store, 150)
    done = Canceler(gateway.store, make_delivery(gateway.store, gateway.provider_fake, events=sink), sink).cancel(
        comm.licensee_id, comm.comm_id)
    assert (done.canceled, done.status) == (150, CommStatus.CANCELED)
    types = sink.types(comm.licensee_id)
    assert types.count("message.canceled") == 150 and types.count("communication.completed") == 1


def test_a_keyed_retry_that_arrives_once_send_at_is_just_past_is_the_same_request(gateway) -> None:
    """The first request schedules the send; its retry comes when SendAt is a moment past (validation would now send
    at once): the key still finds the first communication, no 422 and nothing stored twice."""
    who = principal()
    soon = (utcnow() + timedelta(seconds=2)).isoformat()
    request = SMSSend.model_validate({**send_body(*NUMBERS[:2]), "SendAt": soon})
    first = gateway.service.send(who, request, immediate=False, idempotency_key="retry-after-send-at")
    assert gateway.store.load_header(first.CommId).status is CommStatus.SCHEDULED
    time.sleep(2.5)
    retry = gateway.service.send(who, request, immediate=False, idempotency_key="retry-after-send-at")
    assert (retry.CommId, retry.Reference) == (first.CommId, first.Reference)
    other = SMSSend.model_validate({**send_body(*NUMBERS[:2]), "SendAt": (utcnow() - timedelta(seconds=1)).isoformat()})
    with pytest.raises(ApiError) as refused:  # another SendAt under the same key is another request
        gateway.service.send(who, other, immediate=False, idempotency_key="retry-after-send-at")
    assert refused.value.status == 422
