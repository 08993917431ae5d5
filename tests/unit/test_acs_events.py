"""ACS delivery reports through Event Grid: the envelope, the handshake and each report read into a Receipt.

Events are built with azure-eventgrid's EventGridEvent and serialised as Event Grid delivers them
(fakes/eventgrid.py), or copied from Microsoft's published samples.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.eventgrid import EventGridEvent

from fakes.acs import AcsFake, SentSms
from fakes.eventgrid import validation_event, wire_event
from gateway.providers import acs_events
from gateway.providers.acs_events import Ignored, MalformedBatch, MalformedEvent, Validation, read_event
from gateway.receipts import Receipt, ReceiptOutcome, ReceiptState

COMM_ID = uuid.UUID("e5f053d5e85f5423aa7486e8191a6dc8")
MESSAGE_ID = "Outgoing_202009180022138813a09b-0cbf-4304-9b03-1546683bb910"

# Microsoft's sample (azure-docs articles/event-grid/communication-services-telephony-sms-events.md, 2025),
# with a tag the gateway sets: the CommId in N form.
SAMPLE_2025 = {
    "id": MESSAGE_ID,
    "topic": "/subscriptions/{subscription-id}/resourceGroups/{group-name}/providers/microsoft.communication/"
             "communicationservices/{communication-services-resource-name}",
    "subject": "/phonenumber/15555555555",
    "data": {
        "messageId": MESSAGE_ID,
        "from": "15555555555",
        "to": "+15555555555",
        "deliveryStatus": "Delivered",
        "deliveryStatusDetails": "No error.",
        "receivedTimestamp": "2020-09-18T00:22:20.2855749Z",
        "deliveryAttempts": [{"timestamp": "2020-09-18T00:22:14.9315918Z", "segmentsSucceeded": 1,
                              "segmentsFailed": 0}],
        "Tag": COMM_ID.hex,
    },
    "eventType": "Microsoft.Communication.SMSDeliveryReportReceived",
    "dataVersion": "1.0",
    "metadataVersion": "1",
    "eventTime": "2020-09-18T00:22:20Z",
}
# The 2022 version of the same page: every name capitalised, no tag.
SAMPLE_2022 = {
    **SAMPLE_2025,
    "data": {
        "MessageId": MESSAGE_ID,
        "From": "15555555555",
        "To": "+15555555555",
        "DeliveryStatus": "Delivered",
        "DeliveryStatusDetails": "No error.",
        "ReceivedTimestamp": "2020-09-18T00:22:20.2855749Z",
        "DeliveryAttempts": [{"Timestamp": "2020-09-18T00:22:14.9315918Z", "SegmentsSucceeded": 1,
                              "SegmentsFailed": 0}],
    },
}
RECEIVED = datetime(2020, 9, 18, 0, 22, 20, 285574, tzinfo=UTC)


def report(**data: Any) -> dict[str, Any]:
    """A delivery report built with the SDK, as Event Grid delivers it; ``data`` overrides the sample's."""
    fields = {**SAMPLE_2025["data"], **data}
    fields = {name: value for name, value in fields.items() if value is not None}
    event = EventGridEvent(subject="/phonenumber/15555555555", event_type=acs_events.DELIVERY_REPORT_EVENT,
                           data=fields, data_version="1.0", id=MESSAGE_ID)
    return wire_event(event)


def test_microsofts_sample_is_a_delivered_receipt_for_the_tagged_communication() -> None:
    assert read_event(SAMPLE_2025) == Receipt(
        provider="acs", message_id=MESSAGE_ID, provider_status="Delivered", state=ReceiptState.DELIVERED,
        occurred_at=RECEIVED, comm_id=COMM_ID, to="+15555555555", segments=1,
    )


def test_the_capitalised_sample_reads_the_same_and_without_a_tag_has_no_comm_id() -> None:
    receipt = read_event(SAMPLE_2022)
    assert isinstance(receipt, Receipt)
    assert (receipt.message_id, receipt.state, receipt.to, receipt.occurred_at) == (
        MESSAGE_ID, ReceiptState.DELIVERED, "+15555555555", RECEIVED)
    assert receipt.comm_id is None  # found by its message id alone


@pytest.mark.parametrize("name", ["Tag", "tag", "TAG"])
def test_names_are_read_whatever_their_case(name: str) -> None:
    event = report(**{"Tag": None, name: COMM_ID.hex, "DELIVERYSTATUS": "Failed", "deliveryStatus": None})
    receipt = read_event(event)
    assert isinstance(receipt, Receipt)
    assert (receipt.comm_id, receipt.state) == (COMM_ID, ReceiptState.FAILED)
    envelope = {name.upper(): value for name, value in event.items()}  # the envelope's names too
    assert read_event(envelope) == receipt


@pytest.mark.parametrize(("attempts", "segments"), [
    ([{"timestamp": "2020-09-18T00:22:14Z", "segmentsSucceeded": 2, "segmentsFailed": 1}], 3),
    ([{"SegmentsSucceeded": 0, "SegmentsFailed": 2}], 2),
    ([{"segmentsSucceeded": 0, "segmentsFailed": 1}, {"segmentsSucceeded": 4, "segmentsFailed": 0}], 4),  # the last
    ([], None),
    ([{"segmentsSucceeded": "2", "segmentsFailed": 0}], None),
    ([{"segmentsSucceeded": True, "segmentsFailed": 0}], None),
    ([{"segmentsSucceeded": -1, "segmentsFailed": 2}], None),
    ([{"segmentsSucceeded": 0, "segmentsFailed": 0}], None),
    (["not an attempt"], None),
    ({"segmentsSucceeded": 1}, None),
    (None, None),
])
def test_the_segments_are_the_last_delivery_attempts(attempts: Any, segments: int | None) -> None:
    receipt = read_event(report(deliveryAttempts=attempts))
    assert isinstance(receipt, Receipt) and receipt.segments == segments


def test_a_failed_report_keeps_its_details_as_the_error_message() -> None:
    receipt = read_event(report(deliveryStatus="Failed", deliveryStatusDetails="Sender blocked for given recipient"))
    assert isinstance(receipt, Receipt)
    assert (receipt.state, receipt.provider_status, receipt.error_message) == (
        ReceiptState.FAILED, "Failed", "Sender blocked for given recipient")
    assert receipt.opted_out  # issue 14: the number joins the licensee's opt-out list


@pytest.mark.parametrize(("status", "details"), [("Failed", "Number blocked"), ("Delivered", "No error.")])
def test_only_a_blocked_sender_is_an_opt_out(status: str, details: str) -> None:
    receipt = read_event(report(deliveryStatus=status, deliveryStatusDetails=details))
    assert isinstance(receipt, Receipt) and not receipt.opted_out


def test_a_delivered_report_has_no_error_message() -> None:
    receipt = read_event(report(deliveryStatusDetails="No error."))
    assert isinstance(receipt, Receipt) and receipt.error_message is None


@pytest.mark.parametrize(("raw", "expected"), [
    ("+15555555555", "+15555555555"),
    ("15555555555", "+15555555555"),
    ("447911123456", "+447911123456"),
    (" +44 7911 123-456 ", "+447911123456"),
    ("Contoso", None),
    ("", None),
    ("+0123", None),
    (15555555555, None),
    (None, None),
])
def test_numbers_are_normalised_to_e164(raw: Any, expected: str | None) -> None:
    assert acs_events.normalise_number(raw) == expected
    receipt = read_event(report(to=raw))
    assert isinstance(receipt, Receipt) and receipt.to == expected


def test_a_status_acs_does_not_document_is_recorded_but_not_shown() -> None:
    receipt = read_event(report(deliveryStatus="Expired"))
    assert isinstance(receipt, Receipt)
    assert (receipt.provider_status, receipt.state) == ("Expired", None)


def test_a_tag_that_is_not_a_comm_id_is_another_applications_message() -> None:
    for tag in ("Optional customer-tag set in the original message", COMM_ID.hex[:-1], str(COMM_ID), 42):
        assert isinstance(read_event(report(Tag=tag)), Ignored), tag


def test_the_time_is_the_reports_or_else_the_events() -> None:
    receipt = read_event(report(receivedTimestamp=None))
    assert isinstance(receipt, Receipt)
    assert receipt.occurred_at is not None and receipt.occurred_at.tzinfo is not None
    no_times = report(receivedTimestamp="yesterday")
    no_times.pop("eventTime")
    receipt = read_event(no_times)
    assert isinstance(receipt, Receipt) and receipt.occurred_at is None


def test_the_handshake_is_read_from_the_sdks_validation_event_and_the_docs_sample() -> None:
    assert read_event(wire_event(validation_event("512d38b6"))) == Validation("512d38b6")
    docs_sample = {
        "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66", "topic": "/subscriptions/x", "subject": "",
        "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
                 "validationUrl": "https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/x/validate?id=1"},
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "eventTime": "2022-10-28T04:23:35.1981776Z",
        "metadataVersion": "1", "dataVersion": "1",
    }
    assert read_event(docs_sample) == Validation("512d38b6-c7b8-40c8-89fe-f46f9e9622b6")
    assert acs_events.handshake_answer("512d38b6") == '{"validationResponse": "512d38b6"}'


@pytest.mark.parametrize("event_type", ["Microsoft.Communication.SMSEventX", "Microsoft.Storage.BlobCreated"])
def test_other_event_types_are_ignored(event_type: str) -> None:
    event = {**SAMPLE_2025, "eventType": event_type,
             "data": {"messageId": "Incoming_1", "from": "15555555555", "to": "15555555555", "message": "hi"}}
    assert isinstance(read_event(event), Ignored)


@pytest.mark.parametrize(("event", "why"), [
    ([SAMPLE_2025], "not a JSON object"),
    ("event", "not a JSON object"),
    ({**SAMPLE_2025, "eventType": None}, "no eventType"),
    ({name: value for name, value in SAMPLE_2025.items() if name != "eventType"}, "no eventType"),
    ({**SAMPLE_2025, "data": "Delivered"}, "without a data object"),
    (report(messageId=None), "without data.messageId"),
    (report(messageId=""), "without data.messageId"),
    (report(deliveryStatus=None), "without data.deliveryStatus"),
    ({**wire_event(validation_event("x")), "data": {}}, "without data.validationCode"),
])
def test_events_that_cannot_be_read_say_why(event: Any, why: str) -> None:
    with pytest.raises(MalformedEvent, match=why):
        read_event(event)


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe[]", b'{"eventType": "x"}', b'"[]"', b"null", b"[" * 100_000])
def test_a_body_that_is_not_a_json_array_is_a_malformed_batch(body: bytes) -> None:
    with pytest.raises(MalformedBatch):
        acs_events.parse_batch(body)


def test_every_event_of_a_batch_is_applied_and_a_bad_one_loses_none_of_the_others() -> None:
    applied: list[Receipt] = []

    def apply(receipt: Receipt) -> ReceiptOutcome:
        applied.append(receipt)
        return ReceiptOutcome.DUPLICATE if len(applied) > 1 else ReceiptOutcome.APPLIED

    other = report(messageId="Outgoing_2", deliveryStatus="Failed", deliveryStatusDetails="Unreachable")
    events = acs_events.parse_batch(json.dumps(
        [SAMPLE_2025, {"eventType": "Microsoft.Storage.BlobCreated", "data": {}}, "junk", other,
         report(messageId=None)]).encode())
    result = acs_events.receive(events, apply)
    assert [receipt.message_id for receipt in applied] == [MESSAGE_ID, "Outgoing_2"]
    assert result.problems == [(2, "an event is not a JSON object"), (4, "a delivery report without data.messageId")]
    assert result.summary() == {"applied": 1, "ignored": 1, "duplicate": 1, "malformed": 2}
    assert result.validation_code is None


def test_a_storage_failure_ends_the_batch_so_event_grid_sends_it_again() -> None:
    def apply(receipt: Receipt) -> ReceiptOutcome:
        raise ServiceRequestError("storage is down")

    with pytest.raises(ServiceRequestError):
        acs_events.receive([SAMPLE_2025], apply)


def test_the_key_is_compared_whole() -> None:
    key = "k" * 40
    assert acs_events.key_matches(key, key)
    assert not acs_events.key_matches(None, key)
    assert not acs_events.key_matches("", key)
    assert not acs_events.key_matches(key[:-1], key)
    assert not acs_events.key_matches(key + "k", key)
    assert not acs_events.key_matches("é" * 40, key)


def test_the_fakes_reports_read_as_the_receipts_they_describe() -> None:
    fake = AcsFake(events_seed=7)
    fake.report_outcome("+447911123456", "Failed", "Sender blocked for given recipient")
    shapes = set()
    for index in range(12):
        to = "+447911123456" if index % 2 else "+15555550123"
        sms = SentSms(f"Outgoing_{index}", "+18005550199", to, "hi", COMM_ID.hex, True, None, None)
        event = wire_event(fake.delivery_report(sms))
        shapes.add(next(name for name in event["data"] if name.lower() == "messageid"))
        assert str(event["data"].get("from", event["data"].get("From"))) == "18005550199"
        receipt = read_event(json.loads(json.dumps(event)))
        assert isinstance(receipt, Receipt)
        assert (receipt.message_id, receipt.comm_id, receipt.to) == (f"Outgoing_{index}", COMM_ID, to)
        assert receipt.state == (ReceiptState.FAILED if index % 2 else ReceiptState.DELIVERED)
        assert receipt.error_message == ("Sender blocked for given recipient" if index % 2 else None)
        assert receipt.segments == 1
    assert shapes == {"messageId", "MessageId"}  # both of Microsoft's shapes
