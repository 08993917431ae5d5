"""Delivery's guarantees that a mutation run once found unguarded: each test fails with its mutant applied.

Delivery and its give-up run against a real Azurite, raced deterministically: a store whose next
``load`` lets another worker run to the end after reading, so both workers hold the same rows before
either writes. The mutants, and the command that applies them one at a time (``scripts/mutation.py``),
are in docs/testing.md; tests/integration/test_http_guarantees.py has those of validation and authentication.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pytest

from gateway.delivery import ABANDONED, DeliveryInProgress, RetryLater
from gateway.providers.base import OutboundSms, Outcome, SendResult
from gateway.storage import CommStatus, CommunicationStore, RecipientState, Snapshot, utcnow
from tests.integration.test_delivery import ScriptedProvider, make_delivery, stored

CLAIM_SECONDS = 60  # make_delivery's claim time-out, SMS_CLAIM_TIMEOUT_SECONDS's default


class LoadThen:
    """A CommunicationStore whose next ``load`` runs ``meanwhile`` after reading: another worker acting
    between this one's read and its write."""

    def __init__(self, store: CommunicationStore, meanwhile: Callable[[], object]) -> None:
        self._store = store
        self._meanwhile: Callable[[], object] | None = meanwhile

    def load(self, comm_id: uuid.UUID, rows: range | None = None) -> Snapshot | None:
        snapshot = self._store.load(comm_id, rows=rows)
        meanwhile, self._meanwhile = self._meanwhile, None
        if meanwhile is not None:
            meanwhile()
        return snapshot

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


class Clock:
    """A clock the test moves by hand; whole seconds, so stored times read back exactly."""

    def __init__(self) -> None:
        self.now = utcnow().replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(make_gateway) -> CommunicationStore:
    return make_gateway().store


def numbers_of(comm) -> list[str]:
    return sorted(spec.phone_number for spec in comm.recipients_spec)


@pytest.mark.parametrize("rows_now", [True, False], ids=["rows-written-at-accept", "rows-written-by-the-worker"])
def test_two_workers_that_read_the_same_pending_recipients_send_each_once(store, rows_now: bool) -> None:
    """The claim is conditional: of two workers holding the same Pending rows, only the first to claim sends."""
    comm = stored(store, 3, rows_now=rows_now)
    provider = ScriptedProvider()
    other = make_delivery(store, provider)
    late = make_delivery(LoadThen(store, lambda: other.deliver(comm.comm_id)), provider)
    with pytest.raises(DeliveryInProgress):
        late.deliver(comm.comm_id)
    assert sorted(provider.numbers()) == numbers_of(comm)
    snapshot = store.load(comm.comm_id)
    assert snapshot.communication.status is CommStatus.SENT
    assert [(r.status, r.attempts) for r in snapshot.stored_recipients] == [(RecipientState.SENT, 1)] * 3
    report = make_delivery(store, provider).deliver(comm.comm_id)  # a redelivery reports, and sends nothing
    assert (report.status, report.sent, len(provider.sent)) == (CommStatus.SENT, 3, 3)


def crashed_mid_batch(store, clock: Clock) -> object:
    """A communication whose worker died after its provider call went out: every recipient left Sending."""
    comm = stored(store, 3)
    with pytest.raises(SystemExit):
        make_delivery(store, ScriptedProvider(crash_after=1), clock=clock).deliver(comm.comm_id)
    return comm


@pytest.mark.parametrize(("window", "resent"), [(3600, True), (660, False), (600, False)],
                         ids=["inside-the-window", "past-the-window", "at-the-window"])
def test_an_expired_claim_is_resent_only_inside_the_providers_resend_window(store, window: int,
                                                                             resent: bool) -> None:
    """Resending is safe only while the provider still deduplicates: measured from the first attempt."""
    clock = Clock()
    comm = crashed_mid_batch(store, clock)
    clock.now += timedelta(seconds=660)  # past the claim time-out, and as old as the middle window
    provider = ScriptedProvider(resend_is_safe=True)
    provider.resend_window_seconds = window
    report = make_delivery(store, provider, clock=clock).deliver(comm.comm_id)
    if resent:
        assert (report.status, sorted(provider.numbers())) == (CommStatus.SENT, numbers_of(comm))
    else:
        assert (provider.sent, report.status, report.failed) == ([], CommStatus.FAILED, 3)
        assert {r.error_code for r in store.load(comm.comm_id).stored_recipients} == {"OutcomeUnknown"}


def test_a_fresh_claim_says_when_it_expires_and_expires_at_the_claim_timeout(store) -> None:
    clock = Clock()
    comm = crashed_mid_batch(store, clock)
    clock.now += timedelta(seconds=30)
    with pytest.raises(DeliveryInProgress) as caught:
        make_delivery(store, ScriptedProvider(), clock=clock).deliver(comm.comm_id)
    assert caught.value.retry_in_seconds == CLAIM_SECONDS - 30 + 1
    clock.now += timedelta(seconds=CLAIM_SECONDS - 30)  # as old as the claim: expired; this provider resends safely
    provider = ScriptedProvider(resend_is_safe=True)
    report = make_delivery(store, provider, clock=clock).deliver(comm.comm_id)
    assert (report.status, sorted(provider.numbers())) == (CommStatus.SENT, numbers_of(comm))


class BatchRecorder(ScriptedProvider):
    """Accepts everything; records how many messages each call carried."""

    def __init__(self, max_batch_size: int) -> None:
        super().__init__()
        self.max_batch_size = max_batch_size
        self.batches: list[int] = []

    def send(self, messages: Sequence[OutboundSms], deadline: float | None = None) -> list[SendResult]:
        self.batches.append(len(messages))
        return super().send(messages)


@pytest.mark.parametrize(("recipients", "max_batch_size", "batches"), [(3, 1, [1, 1, 1]), (250, 100, [99, 99, 52])])
def test_a_provider_call_carries_its_batch_size_at_most_and_fits_one_transaction(
        store, recipients: int, max_batch_size: int, batches: list[int]) -> None:
    """A batch is claimed and recorded in one transaction with the header: 99 recipients at most."""
    comm = stored(store, recipients)
    provider = BatchRecorder(max_batch_size)
    assert make_delivery(store, provider).deliver(comm.comm_id).sent == recipients
    assert provider.batches == batches


def test_give_up_steps_back_when_a_worker_has_just_sent(store) -> None:
    """The poison or sweep path never overwrites a recipient a live worker recorded as Sent."""
    comm = stored(store, 2, rows_now=True)
    provider = ScriptedProvider()
    worker = make_delivery(store, provider)
    poison = make_delivery(LoadThen(store, lambda: worker.deliver(comm.comm_id)), provider)
    with pytest.raises(DeliveryInProgress):
        poison.give_up(comm.comm_id, "Delivery abandoned after 5 attempts")
    snapshot = store.load(comm.comm_id)
    assert [(r.status, r.error_code) for r in snapshot.stored_recipients] == [(RecipientState.SENT, None)] * 2
    assert (snapshot.communication.status, snapshot.communication.last_error) == (CommStatus.SENT, None)

    report = make_delivery(store, provider).give_up(comm.comm_id, "Delivery abandoned after 5 attempts")
    assert (report.status, report.sent, report.last_error) == (CommStatus.SENT, 2, None)  # the retried poison
    assert store.load_header(comm.comm_id).last_error is None  # message abandons nothing that was delivered


def test_give_up_ends_a_communication_whose_recipients_are_all_final(store) -> None:
    """Rows all Sent or Failed under a header still Sending: give-up writes the final status, not Abandoned."""
    comm = stored(store, 2, rows_now=True)
    snapshot = store.load(comm.comm_id)
    header, (sent, failed) = snapshot.communication, snapshot.stored_recipients
    sent.status, failed.status, failed.error_code, failed.error_message = (
        RecipientState.SENT, RecipientState.FAILED, "E1", "scripted")
    header.status = CommStatus.SENDING
    store.save(header, [sent, failed])

    report = make_delivery(store, ScriptedProvider()).give_up(comm.comm_id, "Delivery did not finish after 3 sweeps")
    assert (report.status, report.sent, report.failed, report.pending) == (CommStatus.PARTIALLY_SENT, 1, 1, 0)
    stored_header = store.load_header(comm.comm_id)
    assert (stored_header.status, stored_header.sent_count, stored_header.failed_count) == (
        CommStatus.PARTIALLY_SENT, 1, 1)
    assert not (stored_header.last_error or "").startswith(ABANDONED)


def test_give_up_fails_every_open_recipient_with_the_reason_and_its_last_error(store) -> None:
    comm = stored(store, 2)
    busy = {spec.phone_number: [Outcome.RETRY] for spec in comm.recipients_spec}
    with pytest.raises(RetryLater):
        make_delivery(store, ScriptedProvider(busy)).deliver(comm.comm_id)
    reason = "r" * 990  # with the last error appended, longer than the 1000 characters kept
    report = make_delivery(store, ScriptedProvider()).give_up(comm.comm_id, reason)
    assert (report.status, report.failed, report.pending) == (CommStatus.FAILED, 2, 0)
    snapshot = store.load(comm.comm_id)
    assert snapshot.communication.status is CommStatus.FAILED
    assert snapshot.communication.last_error == f"{ABANDONED}: {reason}"[:1000]
    assert {(r.status, r.error_code, r.error_message) for r in snapshot.stored_recipients} == {
        (RecipientState.FAILED, ABANDONED, f"{reason} (last error E1: scripted)"[:1000])}
    assert make_delivery(store, ScriptedProvider()).give_up(uuid.uuid4(), "gone") is None


class FailingProvider:
    """Fails every message for good, each with its own code and a message longer than a property keeps."""

    name = "failing"
    max_batch_size = 100
    resend_is_safe = False
    resend_window_seconds = None

    def send(self, messages: Sequence[OutboundSms], deadline: float | None = None) -> list[SendResult]:
        return [SendResult(message.recipient_id, Outcome.FAILED, error_code=f"E{n}", error_message=str(n) * 1200)
                for n, message in enumerate(messages)]


def test_a_communication_shows_the_last_error_of_its_batch_cut_to_1000_characters(store) -> None:
    comm = stored(store, 2)
    report = make_delivery(store, FailingProvider()).deliver(comm.comm_id)
    assert (report.status, report.failed) == (CommStatus.FAILED, 2)
    assert store.load_header(comm.comm_id).last_error == f"E1: {'1' * 1200}"[:1000]


class SendingMeanwhile(ScriptedProvider):
    """Accepts every message, after running ``meanwhile`` while the request is out."""

    def __init__(self, meanwhile: Callable[[], object]) -> None:
        super().__init__()
        self.meanwhile = meanwhile

    def send(self, messages: Sequence[OutboundSms], deadline: float | None = None) -> list[SendResult]:
        self.meanwhile()
        return super().send(messages)


def test_a_send_is_recorded_even_when_give_up_ended_its_recipients_meanwhile(store) -> None:
    """Recording an outcome is unconditional: what the provider accepted is Sent, whatever was written meanwhile."""
    comm = stored(store, 2)
    poison = make_delivery(store, ScriptedProvider())
    provider = SendingMeanwhile(lambda: poison.give_up(comm.comm_id, "Delivery abandoned after 5 attempts"))
    report = make_delivery(store, provider).deliver(comm.comm_id)
    assert (report.status, report.sent) == (CommStatus.SENT, 2)
    snapshot = store.load(comm.comm_id)
    assert [(r.status, r.error_code) for r in snapshot.stored_recipients] == [(RecipientState.SENT, None)] * 2
    assert (snapshot.communication.status, snapshot.communication.last_error) == (CommStatus.SENT, None)
