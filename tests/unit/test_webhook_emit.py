"""The events a state change makes (gateway/webhook_emit.py): which, with what data, and the same ones built again."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gateway.storage import (
    Communication,
    ReceiptRecord,
    RecipientSpec,
    RecipientState,
    ReplyRecord,
    Snapshot,
    comm_id_for,
)
from gateway.webhook_emit import (
    completed_event,
    derive,
    receipt_event,
    recipient_event,
    recipients_events,
    reply_event,
)
from gateway.webhook_events import EventType, event_id_for

LICENSEE = uuid.UUID("0f0f0f0f-1111-4222-8333-444444444444")
LINKED = uuid.UUID("11111111-2222-4333-8444-555555555555")
AT = datetime(2026, 11, 30, 9, 15, 0, 123456, tzinfo=UTC)


def comm(recipients: int = 3, **fields) -> Communication:
    return Communication(comm_id=comm_id_for(LICENSEE, "7358D4A4PA"), licensee_id=LICENSEE, reference="7358D4A4PA",
                         sender="+15005550006", body="Your appointment is at 10:30",
                         recipients_spec=[RecipientSpec(f"+4471000000{n:02d}") for n in range(recipients)],
                         linked_object_id=LINKED, notes="ward 7", **fields)


def final(c: Communication, index: int, status: RecipientState, error_code: str | None = None):
    recipient = c.planned_recipients()[index]
    recipient.status, recipient.error_code, recipient.updated_at = status, error_code, AT + timedelta(seconds=index)
    return recipient


@pytest.mark.parametrize(("status", "type_"), [(RecipientState.SENT, EventType.SENT),
                                               (RecipientState.FAILED, EventType.FAILED),
                                               (RecipientState.OPTED_OUT, EventType.OPTED_OUT)])
def test_a_recipient_made_final_is_one_event_carrying_the_callers_ids(status, type_) -> None:
    c = comm()
    event = recipient_event(c, final(c, 1, status, None if status is RecipientState.SENT else "E1"))
    assert event is not None and event.type is type_ and event.licensee_id == LICENSEE
    assert event.event_id == event_id_for(c.comm_id, type_, 1)
    assert event.timestamp == AT + timedelta(seconds=1)
    assert event.data == {"CommId": c.comm_id.hex, "Reference": "7358D4A4PA",
                          "RecipientId": uuid.uuid5(c.comm_id, "recipient/1").hex, "PhoneNumber": "+447100000001",
                          "Status": status.value, "ErrorCode": None if status is RecipientState.SENT else "E1",
                          "LinkedObjectId": LINKED.hex, "SuiteId": None, "Notes": "ward 7"}
    body = json.loads(json.dumps(event.body()))
    assert (body["type"], body["timestamp"]) == (type_.value, "2026-11-30T09:15:01.123456Z")
    assert "Your appointment" not in json.dumps(body)  # the message body is not an event's business


@pytest.mark.parametrize("status", [RecipientState.PENDING, RecipientState.SENDING])
def test_an_open_recipient_makes_no_event(status) -> None:
    c = comm()
    assert recipient_event(c, final(c, 0, status)) is None
    assert recipients_events(c, [final(c, 0, status), final(c, 1, RecipientState.SENT)])[0].type is EventType.SENT


@pytest.mark.parametrize(("state", "type_"), [("Delivered", EventType.DELIVERED),
                                              ("Undelivered", EventType.UNDELIVERED), ("Failed", EventType.FAILED)])
def test_a_final_receipt_is_one_event_and_a_sent_one_none(state, type_) -> None:
    c = comm()
    record = ReceiptRecord(index=2, message_id="SM1", provider="twilio", state=state, error_code="30003",
                           receipt_at=AT)
    event = receipt_event(c, record)
    assert event is not None and event.type is type_ and event.timestamp == AT
    assert (event.data["Status"], event.data["ErrorCode"], event.data["PhoneNumber"]) == (state, "30003",
                                                                                          "+447100000002")
    assert receipt_event(c, ReceiptRecord(index=2, message_id="SM1", provider="twilio", state="Sent",
                                          receipt_at=AT)) is None
    assert receipt_event(c, ReceiptRecord(index=2, message_id="SM1", provider="twilio")) is None


def test_each_reply_is_its_own_event_with_what_was_said() -> None:
    c = comm()
    first = ReplyRecord("twilio", "SMa", 0, "+447100000000", "+15005550006", "Running late", AT)
    event = reply_event(c, first)
    assert event is not None and event.type is EventType.REPLY
    assert (event.data["From"], event.data["To"], event.data["Body"], event.data["ReceivedAt"]) == \
        ("+447100000000", "+15005550006", "Running late", "2026-11-30T09:15:00.123456Z")
    second = reply_event(c, ReplyRecord("twilio", "SMb", 0, "+447100000000", "+15005550006", "Here now", AT))
    assert second is not None and second.event_id != event.event_id
    assert reply_event(c, first).event_id == event.event_id


def test_completed_only_once_nothing_is_open_and_with_deliverys_status() -> None:
    c = comm(3)
    assert completed_event(c, 1, 1, AT) is None
    event = completed_event(c, 2, 1, AT)
    assert event is not None and event.type is EventType.COMPLETED
    assert event.event_id == event_id_for(c.comm_id, EventType.COMPLETED)
    assert (event.data["Status"], event.data["RecipientCount"], event.data["SentCount"], event.data["FailedCount"],
            event.data["LinkedObjectId"]) == ("PartiallySent", 3, 2, 1, LINKED.hex)
    assert "RecipientId" not in event.data
    assert completed_event(c, 0, 3, AT).data["Status"] == "Failed"
    assert completed_event(c, 3, 0, AT).data["Status"] == "Sent"


def test_derive_builds_again_the_very_events_the_changes_made() -> None:
    c = comm(3)
    rows = [final(c, 0, RecipientState.SENT), final(c, 1, RecipientState.OPTED_OUT, "OptedOut"),
            final(c, 2, RecipientState.SENT)]
    receipt = ReceiptRecord(index=0, message_id="SM1", provider="twilio", state="Delivered", receipt_at=AT)
    reply = ReplyRecord("twilio", "SMr", 2, "+447100000002", "+15005550006", "ok", AT)
    live = [*recipients_events(c, rows), receipt_event(c, receipt), reply_event(c, reply),
            completed_event(c, 2, 1, AT)]
    again = derive(Snapshot(c, rows, {0: receipt}, [reply]), AT)
    assert sorted((e.event_id, json.dumps(e.body())) for e in again) == \
        sorted((e.event_id, json.dumps(e.body())) for e in live if e is not None)


def test_derive_of_a_communication_still_open_has_no_completion() -> None:
    c = comm(2)
    events = derive(Snapshot(c, [final(c, 0, RecipientState.SENT)]), AT)
    assert [e.type for e in events] == [EventType.SENT]
