"""Which recipients a resend takes, and what the new communication carries: pure functions of a snapshot."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from gateway.idempotency import CANDIDATES
from gateway.references import keyed_reference
from gateway.resend import (
    already_resent,
    implicit_key,
    keyed_ids,
    not_yet_resent,
    nothing_to_resend,
    resend_hash,
    resend_message,
    resend_of,
    resendable,
    still_open,
)
from gateway.storage import (
    CommStatus,
    Communication,
    ReceiptRecord,
    Recipient,
    RecipientSpec,
    RecipientState,
    Snapshot,
    comm_id_for,
)

LICENSEE = uuid.UUID("0d6f4a8e-5c1b-4e57-9a43-1f7d2b3c4e5f")
CONTACT = uuid.UUID("11111111-2222-4333-8444-555555555555")
LINKED = uuid.UUID("aaaaaaaa-2222-4333-8444-555555555555")
SUITE = uuid.UUID("bbbbbbbb-2222-4333-8444-555555555555")
WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

# (delivery's row state, or None: no row yet; the receipt's state, or None: no receipt)
ROWS: list[tuple[RecipientState | None, str | None]] = [
    (RecipientState.FAILED, None),  # 0: refused at create
    (RecipientState.SENT, "Undelivered"),  # 1: the carrier could not deliver it
    (RecipientState.SENT, "Delivered"),  # 2
    (RecipientState.SENT, "Failed"),  # 3: accepted, then the provider could not send it
    (RecipientState.OPTED_OUT, None),  # 4
    (RecipientState.CANCELED, None),  # 5
    (RecipientState.EXPIRED, None),  # 6
    (RecipientState.PENDING, None),  # 7
    (RecipientState.SENDING, None),  # 8
    (None, None),  # 9: planned, no row yet
    (RecipientState.SENT, None),  # 10: no receipt yet
    (RecipientState.SENT, "Sent"),  # 11: a receipt that is not final
]


def number(index: int) -> str:
    return f"+1415555{index:04d}"


def original(**fields: object) -> Communication:
    specs = [RecipientSpec(number(i), name=f"R{i}", contact_id=CONTACT if i == 1 else None) for i in range(len(ROWS))]
    values: dict = {
        "comm_id": comm_id_for(LICENSEE, "ORIGINAL01"), "licensee_id": LICENSEE, "reference": "ORIGINAL01",
        "sender": "+15005550006", "body": "Your appointment is at 10:00 - reply YES", "recipients_spec": specs,
        "status": CommStatus.PARTIALLY_SENT, "sender_name": "Clinic", "sender_contact_id": CONTACT,
        "reply_is_allowed": True, "reply_is_required": True, "notes": "reminder", "linked_object_id": LINKED,
        "suite_id": SUITE, "send_at": WHEN, "valid_until": WHEN, "smart_encoded": True,
        "recipient_rows_written": True, **fields,
    }
    return Communication(**values)


def snapshot(comm: Communication) -> Snapshot:
    planned = comm.planned_recipients()
    rows = [Recipient(**{**vars(planned[i]), "status": state}) for i, (state, _) in enumerate(ROWS) if state]
    receipts = {i: ReceiptRecord(i, f"SM{i}", "twilio", state=receipt, receipt_at=WHEN)
                for i, (_, receipt) in enumerate(ROWS) if receipt}
    return Snapshot(comm, rows, receipts)


def test_a_resend_takes_the_recipients_shown_failed_undelivered_or_expired() -> None:
    chosen = resendable(snapshot(original()))
    assert [r.index for r in chosen] == [0, 1, 3, 6]


def test_open_recipients_are_counted_for_the_refusal() -> None:
    assert still_open(snapshot(original())) == 3  # Pending, Sending, and the one without a row
    assert "3 still to be sent" in nothing_to_resend(uuid.uuid4(), 3).message
    error = nothing_to_resend(uuid.uuid4(), 0)
    assert (error.status, error.error_code) == (409, "NothingToResend") and "still" not in error.message


def test_numbers_an_earlier_resend_carried_are_left_out_with_their_names_and_contacts_kept() -> None:
    chosen = resendable(snapshot(original()))
    assert not_yet_resent(chosen, set()) == [RecipientSpec(number(0), "R0"), RecipientSpec(number(1), "R1", CONTACT),
                                             RecipientSpec(number(3), "R3"), RecipientSpec(number(6), "R6")]
    assert not_yet_resent(chosen, {number(0), number(6)}) == [RecipientSpec(number(1), "R1", CONTACT),
                                                              RecipientSpec(number(3), "R3")]
    assert not_yet_resent(chosen, {number(i) for i in range(len(ROWS))}) == []


def test_the_new_communication_carries_the_originals_message_and_links_but_goes_now() -> None:
    first = original()
    specs = [RecipientSpec(number(1), "R1", CONTACT)]
    resend = resend_of(first, "RESEND0001", specs)
    assert resend.comm_id == comm_id_for(LICENSEE, "RESEND0001") and resend.licensee_id == LICENSEE
    assert (resend.sender, resend.sender_name, resend.sender_contact_id) == ("+15005550006", "Clinic", CONTACT)
    assert resend.body == first.body and resend.smart_encoded
    assert (resend.reply_is_allowed, resend.reply_is_required, resend.notes) == (True, True, "reminder")
    assert (resend.linked_object_id, resend.suite_id) == (LINKED, SUITE)
    assert resend.recipients_spec == specs and resend.resent_from == first.comm_id and resend.resent_as == ()
    assert resend.status is CommStatus.QUEUED and resend.send_at is None and resend.valid_until is None
    assert not resend.recipient_rows_written and resend.sent_count == resend.failed_count == 0


def test_the_message_names_the_count_and_the_original() -> None:
    first = original()
    one = resend_of(first, "RESEND0001", [RecipientSpec(number(1))])
    two = resend_of(first, "RESEND0002", [RecipientSpec(number(1)), RecipientSpec(number(3))])
    assert resend_message(one) == f"Resends 1 recipient of {first.comm_id.hex}; queued for delivery"
    assert resend_message(two) == f"Resends 2 recipients of {first.comm_id.hex}; queued for delivery"


def test_the_request_hash_is_the_original_alone() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert resend_hash(a) == resend_hash(uuid.UUID(a.hex)) != resend_hash(b)


def test_the_implicit_key_moves_on_with_each_resend_listed_and_is_no_clients() -> None:
    first = original()
    again = original(resent_as=(uuid.uuid4(),))
    assert implicit_key(first) == implicit_key(original()) != implicit_key(again)
    assert "\n" in implicit_key(first)  # a client's key is visible ASCII or an sf-string: never a newline


def test_keyed_ids_are_the_candidates_accept_once_takes() -> None:
    ids = keyed_ids(LICENSEE, "k-1")
    assert len(ids) == CANDIDATES
    assert ids[0] == comm_id_for(LICENSEE, keyed_reference(LICENSEE, "k-1", 0))
    assert ids[-1] == comm_id_for(LICENSEE, keyed_reference(LICENSEE, "k-1", CANDIDATES - 1))


def test_already_resent_names_the_latest_resend() -> None:
    earlier, latest = uuid.uuid4(), uuid.uuid4()
    error = already_resent(original(resent_as=(earlier, latest)))
    assert (error.status, error.error_code) == (409, "AlreadyResent")
    assert latest.hex in error.message and earlier.hex not in error.message
