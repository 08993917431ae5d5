"""Per-sender pacing on a real Azurite: windows held across workers, a provider's Retry-After, no cost when off."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Sequence

import azure.functions as func
import pytest
from azure.core.pipeline.policies import SansIOHTTPPolicy

from gateway import worker
from gateway.connections import StorageClients
from gateway.delivery import MoreToSend, RetryLater
from gateway.pacing import LATE_SECONDS, LEAD_SECONDS, NoPacing, TablePacer, sender_key
from gateway.providers.base import OutboundSms, Outcome, SendResult
from gateway.queue import encode_message
from gateway.runtime import Gateway, use_gateway
from gateway.settings import Settings
from gateway.storage import CommStatus, RecipientState, utcnow
from tests.integration.test_delivery import ScriptedProvider, make_delivery, stored
from tests.integration.test_retry_delay import RecordingQueue

SENDER = "+15005550006"  # tests.integration.test_storage.make_comm's sender


class RecordingPacer(TablePacer):
    """A TablePacer that notes every window it reserved, (start, messages), and the ones its batches went in.

    A batch whose claim outlasted the lead reserves a second window and leaves the first unused, so on a
    loaded machine ``windows`` can hold more than ``used``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.windows: list[tuple[float, int]] = []
        self.used: list[tuple[float, int]] = []

    def admit(self, sender: str, count: int, prepare) -> float | None:
        reserved_before = len(self.windows)
        wait = super().admit(sender, count, prepare)
        if wait is None and len(self.windows) > reserved_before:
            self.used.append(self.windows[-1])  # the last window this batch reserved is the one it went in
        return wait

    def reserve(self, sender: str, count: int, **options) -> tuple[float, bool]:
        start, reserved = super().reserve(sender, count, **options)
        if reserved:
            self.windows.append((start, count))
        return start, reserved


class RequestLog(SansIOHTTPPolicy):
    """Every storage request's URL, each try."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def on_request(self, request) -> None:
        self.urls.append(request.http_request.url)


def gateway_on(storage_env: dict[str, str], log: RequestLog | None = None, **overrides: str) -> Gateway:
    """A gateway with storage clients of its own: another instance, as far as storage can tell."""
    settings = Settings.from_env({"SMS_DEFAULT_SENDER": SENDER, **storage_env, **overrides})
    clients = StorageClients.create(settings.storage, policies=[log] if log else [])
    gateway = Gateway.create(settings, clients=clients)
    gateway.ensure_resources()
    return gateway


def pacer_of(gateway: Gateway, rate: float) -> RecordingPacer:
    table = gateway.clients.worker_tables.get_table_client(gateway.settings.sender_pacing_table)
    return RecordingPacer(table, rate)


def deliver_until_done(delivery, comm_id: uuid.UUID) -> None:
    """What the queue does for a paced message, without the queue: run again once the window is due."""
    while True:
        try:
            delivery.deliver(comm_id)
            return
        except MoreToSend as more:
            time.sleep(more.wait_seconds)


def test_two_workers_on_one_azurite_never_reserve_overlapping_windows(storage_env) -> None:
    rate = 100.0
    first, second = gateway_on(storage_env, SMS_SENDER_RATE_PER_SECOND="100"), gateway_on(storage_env)
    pacers = [pacer_of(first, rate), pacer_of(second, rate)]
    providers = [ScriptedProvider(), ScriptedProvider()]
    deliveries = [make_delivery(gateway.store, provider, pacer=pacer)
                  for gateway, provider, pacer in zip((first, second), providers, pacers, strict=True)]
    comms = [[stored(first.store, 30) for _ in range(2)] for _ in deliveries]
    failures: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for comm in comms[index]:
                deliver_until_done(deliveries[index], comm.comm_id)
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not failures
    assert all(pacer.windows for pacer in pacers)  # both workers sent, so both competed for the row
    windows = sorted(window for pacer in pacers for window in pacer.windows)
    used = sorted(window for pacer in pacers for window in pacer.used)
    assert sum(count for _, count in used) == 120  # one window per batch sent (a late batch's first goes unused)
    for (start, count), (next_start, _) in itertools.pairwise(windows):
        assert next_start >= start + count / rate - 1e-6  # the next window starts after this one ends
    span = used[-1][0] + used[-1][1] / rate - used[0][0]
    assert 120 / span <= rate * 1.0001  # epoch seconds as doubles: a microsecond of rounding
    assert all(len(pacer.used) == len(provider.sent) / pacer.batch_size(100)
               for pacer, provider in zip(pacers, providers, strict=True))
    for comm in (comm for pair in comms for comm in pair):
        assert first.store.load(comm.comm_id).communication.status is CommStatus.SENT
    assert sorted(m.to for p in providers for m in p.sent) == sorted(
        r.phone_number for pair in comms for comm in pair for r in comm.planned_recipients())


class SlowDownProvider(ScriptedProvider):
    """Answers 429 with a Retry-After for every message, as a rate-limited provider does."""

    def __init__(self, retry_after: float) -> None:
        super().__init__()
        self.retry_after = retry_after

    def send(self, messages: Sequence[OutboundSms], deadline: float | None = None) -> list[SendResult]:
        self.sent.extend(messages)
        return [SendResult(message.recipient_id, Outcome.RETRY, error_code="20429", error_message="Too Many Requests",
                           retry_after_seconds=self.retry_after) for message in messages]


def test_a_providers_retry_after_pushes_the_senders_window_for_every_worker(storage_env) -> None:
    first, second = (gateway_on(storage_env, SMS_SENDER_RATE_PER_SECOND="5") for _ in range(2))
    limited = SlowDownProvider(retry_after=30)
    with pytest.raises(RetryLater):
        make_delivery(first.store, limited, pacer=pacer_of(first, 5)).deliver(stored(first.store, 1).comm_id)
    assert len(limited.sent) == 1

    other = ScriptedProvider()
    comm = stored(second.store, 2)
    with pytest.raises(MoreToSend) as paced:
        make_delivery(second.store, other, pacer=pacer_of(second, 5)).deliver(comm.comm_id)
    assert 25 < paced.value.wait_seconds <= 30  # the other worker's sender waits out the Retry-After
    assert other.sent == []
    assert all(r.status is RecipientState.PENDING for r in second.store.load(comm.comm_id).all_recipients())
    row = second.clients.worker_tables.get_table_client(second.settings.sender_pacing_table).get_entity(
        sender_key(SENDER), "slot")
    assert row["NextFreeAt"] >= time.time() + 25


@pytest.mark.parametrize("rate", [None, "50"])
def test_pacing_costs_storage_calls_only_when_a_rate_is_set(storage_env, rate: str | None) -> None:
    log = RequestLog()
    overrides = {"SMS_SENDER_RATE_PER_SECOND": rate} if rate else {}
    gateway = gateway_on(storage_env, log, **overrides)
    comm = stored(gateway.store, 3)
    log.urls.clear()
    deliver_until_done(gateway.delivery, comm.comm_id)
    pacing_calls = [url for url in log.urls if gateway.settings.sender_pacing_table in url]
    assert gateway.store.load(comm.comm_id).communication.status is CommStatus.SENT
    if rate is None:
        assert pacing_calls == []
    else:
        assert len(pacing_calls) >= 2  # a read and a conditional write per batch


def test_the_worker_queues_a_paced_message_for_its_senders_window_without_spending_an_attempt(storage_env) -> None:
    gateway = gateway_on(storage_env, SMS_SENDER_RATE_PER_SECOND="1")
    gateway.queue = RecordingQueue(gateway.clients.queue(gateway.settings.queue_name))
    gateway.delivery = make_delivery(gateway.store, ScriptedProvider(), pacer=pacer_of(gateway, 1))
    pacer_of(gateway, 1).slow_down(SENDER, [SendResult(uuid.uuid4(), Outcome.RETRY, retry_after_seconds=40)])
    comm = stored(gateway.store, 1)  # one paced batch at 1/s: no fan-out, the run itself waits for the window
    use_gateway(gateway)
    try:
        worker.handle_delivery_message(func.QueueMessage(id="m", body=encode_message(comm.comm_id).encode()))
    finally:
        use_gateway(None)

    [(delay, attempt)] = gateway.queue.enqueued
    assert 35 <= delay <= 40 and attempt == 0  # back when the sender is free; no attempt of the budget spent
    due_in = (gateway.store.load_header(comm.comm_id).next_run_at - utcnow()).total_seconds()
    assert 30 < due_in <= 40  # the sweep leaves it alone until then


def test_a_run_paced_after_a_providers_429_counts_as_failed_so_the_retry_budget_still_ends_it(storage_env) -> None:
    gateway = gateway_on(storage_env, SMS_SENDER_RATE_PER_SECOND="10")
    comm = stored(gateway.store, 3)
    delivery = make_delivery(gateway.store, SlowDownProvider(retry_after=20), pacer=pacer_of(gateway, 10))
    with pytest.raises(RetryLater) as later:
        delivery.deliver(comm.comm_id)
    assert not isinstance(later.value, MoreToSend)  # MoreToSend would spend no attempt: a 429 forever, never poison
    assert 15 < later.value.report.retry_after_seconds <= 20


def test_a_paced_fan_out_queues_each_unit_for_about_its_senders_window(storage_env) -> None:
    gateway = gateway_on(storage_env, SMS_SENDER_RATE_PER_SECOND="4")  # a batch of 1: each unit 0.25 s of the rate
    gateway.queue = RecordingQueue(gateway.clients.queue(gateway.settings.queue_name))
    gateway.delivery = make_delivery(gateway.store, ScriptedProvider(), pacer=pacer_of(gateway, 4))
    comm = stored(gateway.store, 10)
    use_gateway(gateway)
    try:
        worker.handle_delivery_message(func.QueueMessage(id="m", body=encode_message(comm.comm_id).encode()))
    finally:
        use_gateway(None)

    delays = [delay for delay, _ in gateway.queue.enqueued]
    assert delays == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]  # the messages before each unit at 4/s, rounded down


class ClaimSeenPacer(RecordingPacer):
    """Notes, when it starts waiting for a window, what the batch's rows say then."""

    def __init__(self, table, rate: float, store, comm_id: uuid.UUID) -> None:
        super().__init__(table, rate, sleep=self._note)
        self.store, self.comm_id = store, comm_id
        self.states_at_wait: list[list[RecipientState]] = []

    def _note(self, seconds: float) -> None:
        rows = self.store.load(self.comm_id).stored_recipients
        self.states_at_wait.append([row.status for row in rows])
        time.sleep(seconds)


def test_a_batch_is_claimed_before_its_window_starts_so_the_claim_does_not_delay_the_calls(storage_env) -> None:
    gateway = gateway_on(storage_env, SMS_SENDER_RATE_PER_SECOND="10")
    comm = stored(gateway.store, 1)
    table = gateway.clients.worker_tables.get_table_client(gateway.settings.sender_pacing_table)
    pacer = ClaimSeenPacer(table, 10, gateway.store, comm.comm_id)
    pacer.slow_down(SENDER, [SendResult(uuid.uuid4(), Outcome.RETRY, retry_after_seconds=0.5)])  # a window ahead
    provider = ScriptedProvider()
    make_delivery(gateway.store, provider, pacer=pacer).deliver(comm.comm_id)

    assert pacer.states_at_wait == [[RecipientState.SENDING]]  # claimed, then waited for the window
    assert len(provider.sent) == 1


def test_an_idle_senders_window_starts_after_a_lead_that_covers_the_claim(storage_env) -> None:
    gateway = gateway_on(storage_env, SMS_SENDER_RATE_PER_SECOND="10")
    comm = stored(gateway.store, 1)
    table = gateway.clients.worker_tables.get_table_client(gateway.settings.sender_pacing_table)
    pacer = ClaimSeenPacer(table, 10, gateway.store, comm.comm_id)
    before = time.time()
    make_delivery(gateway.store, ScriptedProvider(), pacer=pacer).deliver(comm.comm_id)

    [(start, count)] = pacer.windows
    assert start >= before + LEAD_SECONDS and count == 1
    assert pacer.states_at_wait == [[RecipientState.SENDING]]  # the claim was written inside the lead


def test_a_batch_whose_claim_outlasts_the_lead_takes_the_next_window_instead_of_crowding_it(storage_env) -> None:
    gateway = gateway_on(storage_env, SMS_SENDER_RATE_PER_SECOND="10")
    pacer = pacer_of(gateway, 10)
    slow_claim = 0.5  # ends 0.25 s after the window started: well past LATE_SECONDS
    assert pacer.admit(SENDER, 1, lambda: time.sleep(slow_claim)) is None
    went = time.time()

    first, second = pacer.windows
    assert second[0] >= first[0] + first[1] / 10  # a window of its own after the one that passed
    assert second[0] - 0.01 <= went <= second[0] + LATE_SECONDS  # sent at the new window's start, not late
    on_time = pacer_of(gateway, 10)
    assert on_time.admit(SENDER, 1, lambda: None) is None
    [(start, _)] = on_time.windows
    assert start >= second[0] + 0.1  # the passed window is not handed out again


def test_a_window_more_than_a_second_ahead_is_not_reserved_and_a_paced_batch_is_a_tenth_of_the_rate(
        storage_env) -> None:
    gateway = gateway_on(storage_env, SMS_SENDER_RATE_PER_SECOND="20")
    pacer = pacer_of(gateway, 20)
    assert pacer.batch_size(99) == 2  # so any one second holds at most the rate plus one batch: 22 at 20/s
    pacer.slow_down(SENDER, [SendResult(uuid.uuid4(), Outcome.RETRY, retry_after_seconds=1.5)])
    claimed: list[bool] = []
    wait = pacer.admit(SENDER, 2, lambda: claimed.append(True))
    assert wait is not None and 1.3 < wait <= 1.5  # over the second's tolerance: back through the queue
    assert claimed == [] and pacer.windows == []  # nothing claimed, nothing reserved


def test_an_unpaced_fan_out_queues_every_unit_at_once(storage_env) -> None:
    gateway = gateway_on(storage_env)
    gateway.queue = RecordingQueue(gateway.clients.queue(gateway.settings.queue_name))
    gateway.delivery = make_delivery(gateway.store, ScriptedProvider(), pacer=NoPacing())
    comm = stored(gateway.store, 150)  # two units of a batch of 99
    use_gateway(gateway)
    try:
        worker.handle_delivery_message(func.QueueMessage(id="m", body=encode_message(comm.comm_id).encode()))
    finally:
        use_gateway(None)
    assert gateway.queue.enqueued == [(0, 0), (0, 0)]


class RacingPacer(RecordingPacer):
    """Lets a rival instance reserve between this one's read of the row and its write, once."""

    def __init__(self, *args, rival: TablePacer, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rival = rival

    def _read(self, key: str):
        row = super()._read(key)
        rival, self.rival = self.rival, None
        if rival is not None:
            assert rival.reserve(SENDER, 1)[1]
        return row


@pytest.mark.parametrize("row_exists", [True, False])
def test_a_write_that_lost_the_race_reads_again_and_takes_the_window_after_the_winners(storage_env,
                                                                                        row_exists: bool) -> None:
    gateway = gateway_on(storage_env, SMS_SENDER_RATE_PER_SECOND="10")
    table = gateway.clients.worker_tables.get_table_client(gateway.settings.sender_pacing_table)
    rival = RecordingPacer(table, 10)
    if row_exists:
        rival.reserve(SENDER, 1)
    racer = RacingPacer(table, 10, rival=rival)
    start, reserved = racer.reserve(SENDER, 1)  # its first write is refused: 412 on the row, 409 on the insert

    assert reserved
    winner = rival.windows[-1][0]
    assert start >= winner + 0.1  # after the rival's window, not over it
