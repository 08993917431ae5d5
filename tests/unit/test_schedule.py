"""Scheduled sends without storage: SendAt and ValidUntil validation, the index keys, the queue's waits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.cancel import cancelable
from gateway.delivery import DeliveryReport, MoreToSend, NotDueYet, until_expiry
from gateway.errors import ApiError
from gateway.idempotency import request_hash
from gateway.models import SMSSend
from gateway.providers.common import CONNECTION_LOST, TIMEOUT
from gateway.queue import MAX_DELAY_SECONDS
from gateway.schedule import _due_of, schedule_keys, wait_seconds
from gateway.settings import Settings
from gateway.storage import CommStatus, Recipient, RecipientState
from gateway.validation import validate_send
from tests.samples import send_body

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
SETTINGS = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true",
                              "SMS_DEFAULT_SENDER": "+15005550006"})


def valid(*, immediate: bool = False, **timing: object):
    request = SMSSend.model_validate({**send_body(), **timing})
    return validate_send(request, SETTINGS, immediate=immediate, now=NOW)


def refused(*, immediate: bool = False, **timing: object) -> list[tuple[str, str, str]]:
    with pytest.raises(ApiError) as caught:
        valid(immediate=immediate, **timing)
    assert caught.value.status == 400
    return [(error.field_name, error.error_code, error.message) for error in caught.value.errors]


def iso(moment: datetime) -> str:
    return moment.isoformat()


def test_a_send_at_ahead_is_kept_in_utc_whatever_offset_it_was_written_with() -> None:
    ahead = (NOW + timedelta(days=3)).astimezone(timezone(timedelta(hours=2)))
    assert valid(SendAt=iso(ahead)).send_at == NOW + timedelta(days=3)
    assert valid(SendAt=iso(ahead)).send_at.utcoffset() == timedelta(0)


def test_servicestack_dates_are_read_too() -> None:
    moment = NOW + timedelta(hours=1)
    assert valid(SendAt=f"/Date({int(moment.timestamp() * 1000)})/").send_at == moment


def test_at_most_35_days_ahead() -> None:
    assert valid(SendAt=iso(NOW + timedelta(days=35))).send_at == NOW + timedelta(days=35)
    [(field, code, message)] = refused(SendAt=iso(NOW + timedelta(days=35, seconds=1)))
    assert (field, code) == ("SendAt", "TooFarAhead") and "35 days" in message


def test_more_than_a_minute_past_is_refused_and_just_past_sends_now() -> None:
    [(field, code, _)] = refused(SendAt=iso(NOW - timedelta(seconds=61)))
    assert (field, code) == ("SendAt", "InThePast")
    assert valid(SendAt=iso(NOW - timedelta(seconds=59))).send_at is None
    assert valid(SendAt=iso(NOW)).send_at is None


def test_the_immediate_routes_take_no_send_at() -> None:
    [(field, code, message)] = refused(immediate=True, SendAt=iso(NOW + timedelta(minutes=5)))
    assert (field, code) == ("SendAt", "NotImmediate") and "/immediate" in message
    assert valid(immediate=True).send_at is None


def test_valid_until_must_be_later_than_send_at_or_now() -> None:
    send_at = NOW + timedelta(hours=2)
    [(field, code, _)] = refused(SendAt=iso(send_at), ValidUntil=iso(send_at))
    assert (field, code) == ("ValidUntil", "NotAfterSendAt")
    [(field, _, message)] = refused(ValidUntil=iso(NOW - timedelta(seconds=1)))
    assert field == "ValidUntil" and "now" in message
    later = valid(SendAt=iso(send_at), ValidUntil=iso(send_at + timedelta(seconds=1)))
    assert (later.send_at, later.valid_until) == (send_at, send_at + timedelta(seconds=1))
    assert valid(ValidUntil=iso(NOW + timedelta(minutes=1))).valid_until == NOW + timedelta(minutes=1)


def test_every_problem_is_reported_at_once() -> None:
    errors = refused(immediate=True, SendAt=iso(NOW + timedelta(days=1)), ValidUntil=iso(NOW - timedelta(days=1)))
    assert [field for field, *_ in errors] == ["SendAt", "ValidUntil"]


def test_the_idempotency_hash_reads_the_times() -> None:
    first = valid(SendAt=iso(NOW + timedelta(hours=1)))
    other = valid(SendAt=iso(NOW + timedelta(hours=2)))
    assert request_hash(first, immediate=False) == request_hash(first, immediate=False)
    assert request_hash(first, immediate=False) != request_hash(other, immediate=False)


def test_index_keys_sort_by_due_time_and_give_the_time_back_exactly() -> None:
    comm_id = uuid.uuid4()
    due = datetime(2026, 12, 24, 18, 30, 5, 123456, tzinfo=UTC)
    partition, row = schedule_keys(comm_id, due)
    assert (partition, row) == ("20261224", f"183005123456-{comm_id.hex}")
    assert _due_of(partition, row) == due
    earlier = schedule_keys(uuid.uuid4(), due - timedelta(microseconds=1))
    assert earlier < (partition, row)


def test_a_queue_wait_is_the_rest_of_the_wait_at_most_seven_days() -> None:
    assert wait_seconds(NOW + timedelta(seconds=14.2), NOW) == 15
    assert wait_seconds(NOW - timedelta(seconds=5), NOW) == 0
    assert wait_seconds(NOW + timedelta(days=30), NOW) == MAX_DELAY_SECONDS == 7 * 24 * 3600


def test_a_retry_comes_back_by_valid_until() -> None:
    assert until_expiry(3600, None, NOW) == 3600
    assert until_expiry(3600, NOW + timedelta(seconds=90), NOW) == 90
    assert until_expiry(30, NOW + timedelta(seconds=90), NOW) == 30
    assert until_expiry(30, NOW - timedelta(seconds=5), NOW) == 0


def test_an_early_run_is_more_to_send_waiting_for_its_send_at() -> None:
    report = DeliveryReport(uuid.uuid4(), CommStatus.SCHEDULED, 2, 0, 0, 2)
    early = NotDueYet(report, NOW + timedelta(days=9), NOW)
    assert isinstance(early, MoreToSend) and early.wait_seconds == MAX_DELAY_SECONDS
    assert "scheduled for 2026-12-09" in str(early)


@pytest.mark.parametrize(("status", "error", "expected"), [
    (RecipientState.PENDING, None, True),
    (RecipientState.PENDING, "E1", True),  # a failed attempt the provider refused: never reached a phone
    (RecipientState.PENDING, TIMEOUT, False),  # may have reached the provider
    (RecipientState.PENDING, CONNECTION_LOST, False),
    (RecipientState.SENDING, None, False),
    (RecipientState.SENT, None, False),
    (RecipientState.FAILED, "E1", False),
])
def test_only_what_no_provider_may_have_can_be_canceled(status: RecipientState, error: str | None,
                                                       expected: bool) -> None:
    recipient = Recipient(0, uuid.uuid4(), "+15005550006", status=status, error_code=error)
    assert cancelable(recipient) is expected
