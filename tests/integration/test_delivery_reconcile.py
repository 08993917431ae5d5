"""Delivery when an attempt may have reached the provider: real providers, their fakes, a real Azurite.

A worker that dies between a provider call and recording its answer, or a time-out after the request
went out, leaves recipients whose fate delivery does not know. Twilio cannot de-duplicate, so delivery
asks it (``find_sent``) and resends only what it never got; ACS de-duplicates a resend within 5 minutes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import requests

from fakes.acs import AcsFake
from fakes.server import Fault
from fakes.twilio import TwilioFake
from gateway.delivery import RECONCILE_AFTER_SECONDS, RetryLater
from gateway.providers.acs import AcsProvider
from gateway.providers.acs_settings import AcsSettings
from gateway.providers.base import OutboundSms, SendResult
from gateway.providers.common import NOT_ATTEMPTED, TIMEOUT
from gateway.providers.twilio import TwilioProvider
from gateway.storage import CommStatus, Communication, RecipientState
from tests.integration.test_delivery import ScriptedProvider, _later, make_delivery, stored
from tests.unit.test_twilio_provider import settings_for


@pytest.fixture
def store(make_gateway):
    return make_gateway().store


@pytest.fixture
def fake() -> Iterator[TwilioFake]:
    with TwilioFake() as running:
        yield running  # type: ignore[misc]


@pytest.fixture
def acs() -> Iterator[AcsFake]:
    with AcsFake() as running:
        yield running  # type: ignore[misc]


class DyingSession(requests.Session):
    """A session whose worker dies (SystemExit) at its ``dies_on``-th POST: before it goes out, or after the
    provider got it and before the answer is read."""

    def __init__(self, fake: TwilioFake, dies_on: int, *, after_the_request: bool) -> None:
        super().__init__()
        self.auth = (fake.account_sid, fake.auth_token)
        self.dies_on = dies_on
        self.after_the_request = after_the_request
        self.posts = 0

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.posts += 1
        if self.posts == self.dies_on:
            if self.after_the_request:
                super().post(*args, **kwargs)
            raise SystemExit("worker killed mid-batch")
        return super().post(*args, **kwargs)


def posts(fake: TwilioFake) -> int:
    return sum(1 for seen in fake.requests if seen.method == "POST")


def numbers(comm: Communication) -> list[str]:
    return [spec.phone_number for spec in comm.recipients_spec]


def crash(store, fake: TwilioFake, comm: Communication, got_through: int, *, after_the_request: bool) -> None:
    session = DyingSession(fake, got_through + 1, after_the_request=after_the_request)
    with pytest.raises(SystemExit):
        make_delivery(store, TwilioProvider(settings_for(fake), session=session)).deliver(comm.comm_id)
    assert {r.status for r in store.load(comm.comm_id).stored_recipients} == {RecipientState.SENDING}
    assert len(fake.messages) == got_through + after_the_request


# --- Twilio: reconciled, not resent ------------------------------------------------------------------------------


@pytest.mark.parametrize("after_the_request", [False, True], ids=["died-before-post", "died-after-post"])
def test_a_worker_killed_mid_batch_is_reconciled_and_only_the_rest_is_sent(
    store, fake: TwilioFake, after_the_request: bool
) -> None:
    comm = stored(store, 5)
    crash(store, fake, comm, 2, after_the_request=after_the_request)
    reached_twilio = {m.to for m in fake.messages}

    report = make_delivery(store, TwilioProvider(settings_for(fake)), clock=_later(11)).deliver(comm.comm_id)

    assert (report.status, report.sent, report.failed) == (CommStatus.SENT, 5, 0)
    assert sorted(m.to for m in fake.messages) == sorted(numbers(comm))  # every recipient exactly once
    assert posts(fake) == 5
    sid_for = {m.to: m.sid for m in fake.messages}
    for recipient in store.load(comm.comm_id).stored_recipients:
        assert recipient.status is RecipientState.SENT
        assert recipient.provider_message_id == sid_for[recipient.phone_number]
        assert recipient.error_code is None
        if recipient.phone_number in reached_twilio:
            assert recipient.attempts == 1 and recipient.error_message.startswith("Reconciled")
        else:
            assert recipient.attempts == 2 and recipient.error_message is None


def test_a_time_out_after_twilio_got_the_request_is_reconciled_next_run(store, fake: TwilioFake) -> None:
    comm = stored(store, 3)
    provider = TwilioProvider(settings_for(fake, timeout_seconds=0.3))
    fake.push_fault(Fault(no_answer=True))  # Twilio creates the first Message, and its answer never comes

    with pytest.raises(RetryLater) as later:
        make_delivery(store, provider).deliver(comm.comm_id)

    assert later.value.report.retry_after_seconds == RECONCILE_AFTER_SECONDS  # time for Twilio to settle
    first, *rest = store.load(comm.comm_id).stored_recipients
    assert (first.status, first.error_code) == (RecipientState.PENDING, TIMEOUT)  # left for the next run
    assert {(r.status, r.error_code) for r in rest} == {(RecipientState.PENDING, NOT_ATTEMPTED)}
    assert [m.to for m in fake.messages] == [first.phone_number]

    report = make_delivery(store, provider).deliver(comm.comm_id)

    assert (report.status, report.sent) == (CommStatus.SENT, 3)
    assert sorted(m.to for m in fake.messages) == sorted(numbers(comm)) and posts(fake) == 3
    first = store.load(comm.comm_id).stored_recipients[0]
    assert (first.status, first.provider_message_id, first.attempts) == (
        RecipientState.SENT,
        fake.messages[0].sid,
        1,
    )


def test_a_time_out_before_twilio_made_the_message_is_sent_again(store, fake: TwilioFake) -> None:
    comm = stored(store, 1)
    provider = TwilioProvider(settings_for(fake, timeout_seconds=0.3))
    fake.push_fault(Fault(status=500, delay=0.6))  # the request times out, and Twilio never makes the Message

    with pytest.raises(RetryLater):
        make_delivery(store, provider).deliver(comm.comm_id)
    assert fake.messages == []

    report = make_delivery(store, provider).deliver(comm.comm_id)

    assert (report.status, report.sent) == (CommStatus.SENT, 1)
    [recipient] = store.load(comm.comm_id).stored_recipients
    assert (recipient.provider_message_id, recipient.attempts) == (fake.messages[0].sid, 2)


def test_when_twilio_cannot_say_nothing_is_sent_again(store, fake: TwilioFake) -> None:
    comm = stored(store, 4)
    crash(store, fake, comm, 1, after_the_request=True)
    fake.push_fault(Fault(status=500))  # the list request fails

    report = make_delivery(store, TwilioProvider(settings_for(fake)), clock=_later(11)).deliver(comm.comm_id)

    assert (report.status, report.failed) == (CommStatus.FAILED, 4)
    assert posts(fake) == 2  # no second POST
    recipients = store.load(comm.comm_id).stored_recipients
    assert {r.error_code for r in recipients} == {"OutcomeUnknown"}
    assert all("could not say" in r.error_message for r in recipients)


class RaisingFindSent(ScriptedProvider):
    def find_sent(self, messages: Sequence[OutboundSms]) -> dict[uuid.UUID, str] | None:
        raise RuntimeError("provider is down")


def test_a_find_sent_that_raises_is_taken_as_cannot_tell(store) -> None:
    comm = stored(store, 2)
    with pytest.raises(SystemExit):
        make_delivery(store, ScriptedProvider(crash_after=1)).deliver(comm.comm_id)
    provider = RaisingFindSent()

    report = make_delivery(store, provider, clock=_later(11)).deliver(comm.comm_id)

    assert (report.status, report.failed, provider.sent) == (CommStatus.FAILED, 2, [])


def test_a_provider_that_cannot_reconcile_still_ends_unknown_at_once(store) -> None:
    comm = stored(store, 1)
    provider = ScriptedProvider()
    provider.send = lambda messages: [  # type: ignore[method-assign]
        SendResult(m.recipient_id, "Retry", error_code=TIMEOUT, error_message="timed out")  # type: ignore[arg-type]
        for m in messages
    ]
    report = make_delivery(store, provider).deliver(comm.comm_id)
    assert (report.status, report.failed) == (CommStatus.FAILED, 1)
    assert store.load(comm.comm_id).stored_recipients[0].error_code == "OutcomeUnknown"


# --- ACS: resent within its window, de-duplicated ----------------------------------------------------------------


class DiesAfterCall:
    """Wraps a provider with a small batch size; the worker dies once the ``dies_on``-th call went out."""

    def __init__(self, inner: AcsProvider, batch_size: int, dies_on: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.max_batch_size = batch_size
        self.resend_is_safe = inner.resend_is_safe
        self.resend_window_seconds = inner.resend_window_seconds
        self.dies_on = dies_on
        self.calls = 0

    def send(self, messages: Sequence[OutboundSms]) -> list[SendResult]:
        results = self.inner.send(messages)
        self.calls += 1
        if self.calls == self.dies_on:
            raise SystemExit("worker killed after the ACS call went out")
        return results


def test_acs_a_worker_killed_mid_send_is_resent_within_the_window_and_deduplicated(store, acs: AcsFake) -> None:
    comm = stored(store, 5)
    settings = AcsSettings(connection_string=acs.connection_string, ca_bundle=acs.ca_bundle, timeout_seconds=3.0)
    with pytest.raises(SystemExit):
        make_delivery(store, DiesAfterCall(AcsProvider(settings), batch_size=2, dies_on=2)).deliver(comm.comm_id)
    statuses = [r.status for r in store.load(comm.comm_id).stored_recipients]
    assert statuses == [RecipientState.SENT] * 2 + [RecipientState.SENDING] * 2  # the fifth never claimed
    assert len(acs.sent) == 4

    # Two minutes on: the claims have expired (60 s here) and the first attempts are inside ACS's 300 s window.
    delivery = make_delivery(store, AcsProvider(settings), claim_timeout_seconds=60, clock=_later(2))
    report = delivery.deliver(comm.comm_id)

    assert (report.status, report.sent) == (CommStatus.SENT, 5)
    assert sorted(s.to for s in acs.sent) == sorted(numbers(comm))  # each recipient sent once
    assert acs.dedupe_hits == 2
    message_id = {s.to: s.message_id for s in acs.sent}
    for recipient in store.load(comm.comm_id).stored_recipients:
        assert recipient.status is RecipientState.SENT
        assert recipient.provider_message_id == message_id[recipient.phone_number]
