"""Delivery against a real Azurite: final states, no double sends, retries of pending only."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

import pytest

from gateway.delivery import Delivery, DeliveryInProgress, RetryLater
from gateway.providers.base import OutboundSms, Outcome, SendResult
from gateway.storage import CommStatus, Communication, ConcurrentUpdate, RecipientSpec, RecipientState, utcnow
from tests.integration.test_storage import make_comm


class ScriptedProvider:
    """A provider whose answer per number is scripted; records every message it is given."""

    name = "scripted"
    max_batch_size = 100

    def __init__(self, script: dict[str, list[Outcome]] | None = None, *, resend_is_safe: bool = False,
                 crash_after: int | None = None) -> None:
        self.script = script or {}
        self.resend_is_safe = resend_is_safe
        self.resend_window_seconds: float | None = None
        self.crash_after = crash_after
        self.sent: list[OutboundSms] = []

    def send(self, messages: Sequence[OutboundSms]) -> list[SendResult]:
        results = []
        for message in messages:
            if self.crash_after is not None and len(self.sent) >= self.crash_after:
                raise SystemExit("worker killed mid-batch")
            self.sent.append(message)
            outcomes = self.script.get(message.to, [])
            outcome = outcomes.pop(0) if outcomes else Outcome.ACCEPTED
            results.append(
                SendResult(message.recipient_id, outcome, provider_message_id=f"p-{len(self.sent)}",
                           error_code=None if outcome is Outcome.ACCEPTED else "E1",
                           error_message=None if outcome is Outcome.ACCEPTED else "scripted",
                           retry_after_seconds=7 if outcome is Outcome.RETRY else None)
            )
        return results

    def numbers(self) -> list[str]:
        return [message.to for message in self.sent]


def make_delivery(store, provider, *, claim_timeout_seconds: float = 330, **options) -> Delivery:
    """Delivery with claims held as long as SMS_CLAIM_TIMEOUT_SECONDS's default (``_later(11)`` is past it)."""
    return Delivery(store, provider, claim_timeout_seconds=claim_timeout_seconds, **options)


@pytest.fixture
def store(make_gateway):
    return make_gateway().store


def stored(store, recipients: int = 3, *, rows_now: bool = False) -> Communication:
    comm = make_comm(recipients, reference=uuid.uuid4().hex[:10].upper())
    comm.recipient_rows_written = rows_now
    store.create(comm, comm.planned_recipients() if rows_now else [])
    return comm


@pytest.mark.parametrize("rows_now", [False, True])
def test_every_recipient_sent_once_and_redelivery_sends_nothing(store, rows_now: bool) -> None:
    comm = stored(store, 3, rows_now=rows_now)
    provider = ScriptedProvider()
    delivery = make_delivery(store, provider)
    report = delivery.deliver(comm.comm_id)
    assert report is not None and (report.status, report.sent) == (CommStatus.SENT, 3)
    delivery.deliver(comm.comm_id)
    make_delivery(store, provider).deliver(comm.comm_id)
    assert sorted(provider.numbers()) == sorted(spec.phone_number for spec in comm.recipients_spec)
    snapshot = store.load(comm.comm_id)
    assert snapshot.communication.recipient_rows_written
    assert [r.status for r in snapshot.stored_recipients] == [RecipientState.SENT] * 3
    assert all(r.provider_message_id and r.attempts == 1 for r in snapshot.stored_recipients)


def test_transient_failures_retry_only_the_pending_recipients(store) -> None:
    comm = stored(store, 3)
    flaky = comm.recipients_spec[1].phone_number
    provider = ScriptedProvider({flaky: [Outcome.RETRY, Outcome.RETRY]})
    delivery = make_delivery(store, provider)
    for _ in range(2):
        with pytest.raises(RetryLater) as caught:
            delivery.deliver(comm.comm_id)
        assert caught.value.report.pending == 1 and caught.value.report.retry_after_seconds == 7
        assert store.load_header(comm.comm_id).status is CommStatus.SENDING
    report = delivery.deliver(comm.comm_id)
    assert report.status is CommStatus.SENT
    assert provider.numbers().count(flaky) == 3
    assert len(provider.sent) == 5


def test_permanent_failures_end_partially_sent_or_failed(store) -> None:
    comm = stored(store, 2)
    bad = comm.recipients_spec[0].phone_number
    report = make_delivery(store, ScriptedProvider({bad: [Outcome.FAILED]})).deliver(comm.comm_id)
    assert (report.status, report.sent, report.failed) == (CommStatus.PARTIALLY_SENT, 1, 1)
    snapshot = store.load(comm.comm_id)
    assert snapshot.stored_recipients[0].status is RecipientState.FAILED
    assert snapshot.stored_recipients[0].error_code == "E1"
    assert snapshot.communication.last_error == "E1: scripted"

    comm = stored(store, 1)
    report = make_delivery(store, ScriptedProvider({comm.recipients_spec[0].phone_number: [Outcome.FAILED]})).deliver(
        comm.comm_id
    )
    assert report.status is CommStatus.FAILED


def test_a_large_send_is_claimed_and_recorded_in_provider_batches(store) -> None:
    comm = stored(store, 250)
    provider = ScriptedProvider()
    report = make_delivery(store, provider).deliver(comm.comm_id)
    assert (report.status, report.sent) == (CommStatus.SENT, 250)
    assert len({message.to for message in provider.sent}) == 250


def test_a_worker_killed_mid_batch_leaves_a_claim_that_another_worker_respects(store) -> None:
    comm = stored(store, 3)
    with pytest.raises(SystemExit):
        make_delivery(store, ScriptedProvider(crash_after=1)).deliver(comm.comm_id)
    assert [r.status for r in store.load(comm.comm_id).stored_recipients] == [RecipientState.SENDING] * 3
    with pytest.raises(DeliveryInProgress):
        make_delivery(store, ScriptedProvider()).deliver(comm.comm_id)


def _later(minutes: int):
    return lambda: utcnow() + timedelta(minutes=minutes)


def test_an_expired_claim_is_resent_only_when_the_provider_makes_resends_safe(store) -> None:
    comm = stored(store, 3)
    with pytest.raises(SystemExit):
        make_delivery(store, ScriptedProvider(crash_after=1)).deliver(comm.comm_id)
    safe = ScriptedProvider(resend_is_safe=True)
    report = make_delivery(store, safe, clock=_later(11)).deliver(comm.comm_id)
    assert (report.status, len(safe.sent)) == (CommStatus.SENT, 3)

    comm = stored(store, 3)
    with pytest.raises(SystemExit):
        make_delivery(store, ScriptedProvider(crash_after=1)).deliver(comm.comm_id)
    unsafe = ScriptedProvider(resend_is_safe=False)
    report = make_delivery(store, unsafe, clock=_later(11)).deliver(comm.comm_id)
    assert unsafe.sent == []
    assert (report.status, report.failed) == (CommStatus.FAILED, 3)
    assert {r.error_code for r in store.load(comm.comm_id).stored_recipients} == {"OutcomeUnknown"}


def test_a_claim_on_rows_changed_since_they_were_read_is_refused(store) -> None:
    comm = stored(store, 1, rows_now=True)
    snapshot = store.load(comm.comm_id)
    recipient = snapshot.stored_recipients[0]
    make_delivery(store, ScriptedProvider()).deliver(comm.comm_id)  # another worker changes the row
    with pytest.raises(ConcurrentUpdate):
        store.save(snapshot.communication, [recipient], claim=True)


def test_an_unknown_communication_is_ignored(store) -> None:
    assert make_delivery(store, ScriptedProvider()).deliver(uuid.uuid4()) is None


def test_specs_keep_names_and_contact_ids(store) -> None:
    comm = make_comm(0, reference="NAMES00001")
    contact = uuid.uuid4()
    comm.recipients_spec = [RecipientSpec("+14155550123", name="Zoë, \"Z\"", contact_id=contact)]
    store.create(comm)
    make_delivery(store, ScriptedProvider()).deliver(comm.comm_id)
    row = store.load(comm.comm_id).stored_recipients[0]
    assert (row.name, row.contact_id) == ("Zoë, \"Z\"", contact)
