"""How an OptedOut recipient counts: not sent, final, and named apart in an immediate send's message."""

from __future__ import annotations

import uuid

from gateway.delivery import DeliveryReport
from gateway.service import _outcome_message
from gateway.storage import CommStatus, Recipient, RecipientState, aggregate_status, count_recipients


def recipients(*states: RecipientState) -> list[Recipient]:
    return [Recipient(index, uuid.uuid4(), f"+1415555{index:04d}", status=state) for index, state in enumerate(states)]


def test_an_opted_out_recipient_is_final_and_counts_as_not_sent() -> None:
    assert RecipientState.OPTED_OUT.is_final
    counts = count_recipients(recipients(RecipientState.SENT, RecipientState.OPTED_OUT, RecipientState.FAILED))
    assert counts == (1, 2, 0)
    assert aggregate_status(*counts) is CommStatus.PARTIALLY_SENT
    assert aggregate_status(*count_recipients(recipients(RecipientState.OPTED_OUT))) is CommStatus.FAILED


def test_the_immediate_message_names_opted_out_recipients_apart_from_failures() -> None:
    report = DeliveryReport(uuid.uuid4(), CommStatus.PARTIALLY_SENT, total=3, sent=1, failed=2, pending=0,
                            last_error="21211: not a phone number", opted_out=1)
    assert _outcome_message(report, retrying=False) == (
        "Sent to 1 of 3 recipients; 1 failed; 1 opted out (last error: 21211: not a phone number)")
    only_opted_out = DeliveryReport(uuid.uuid4(), CommStatus.FAILED, total=1, sent=0, failed=1, pending=0,
                                    last_error="21610: Attempt to send to unsubscribed recipient", opted_out=1)
    assert _outcome_message(only_opted_out, retrying=False) == "Sent to 0 of 1 recipient; 0 failed; 1 opted out"
